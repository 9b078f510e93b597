//! A plain WASI command: valid component, wrong world.

fn main() {
    println!("not a recipe");
}
