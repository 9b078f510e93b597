//! The one `bindgen!` of the host: Rust types and traits for `wit/`.

wasmtime::component::bindgen!({
    path: "../wit",
    world: "recipe",
    imports: { default: async },
    exports: { default: async },
});
