//! Bad input: a clear one-line error, a non-zero exit, nothing changed.

use netsh_e2e::sandboxed;

/// Run `netsh ARGS` expecting failure; return its stderr. The namespace's
/// state must be the same before and after.
fn fails(args: &str) -> String {
    let out = sandboxed(
        &format!(
            r#"
printf 'hello, not wasm\n' > notwasm.wasm
printf '\0asm\1\0\0\0' > core.wasm
before=$(snapshot)
expect_fail $NETSH {args} >err.txt
after=$(snapshot)
[ "$before" = "$after" ] || {{ echo CHANGED; diff <(echo "$before") <(echo "$after"); exit 1; }}
cat err.txt
"#
        ),
        60,
    );
    out.assert_ok();
    let err = out.stdout.trim().to_string();
    assert!(!err.contains("stack backtrace"), "not a clean error: {err}");
    assert_eq!(err.lines().filter(|l| l.starts_with("netsh: error:")).count(), 1, "{err}");
    err
}

#[test]
fn not_wasm() {
    assert!(fails("run --allow-all notwasm.wasm").contains("is not a WebAssembly file"));
}

#[test]
fn core_module() {
    assert!(fails("run --allow-all core.wasm").contains("core WebAssembly module, not a component"));
}

#[test]
fn component_of_another_world() {
    assert!(fails("run --allow-all $GUESTS/not-a-recipe.wasm").contains("is not a netsh recipe"));
}

#[test]
fn trap_shows_the_trap_kind() {
    let err = fails("run --allow-all $GUESTS/misbehave.wasm -- trap");
    assert!(err.contains("recipe trapped: wasm `unreachable` instruction executed"), "{err}");
}

#[test]
fn guest_panic_is_reported_in_one_line() {
    let err = fails("run --allow-all $GUESTS/misbehave.wasm -- panic");
    assert!(err.contains("deliberate panic") && err.contains("recipe trapped"), "{err}");
}

#[test]
fn endless_loop_hits_the_cpu_limit() {
    assert!(
        fails("run --allow-all --timeout 1s $GUESTS/misbehave.wasm -- loop").contains("exceeded its time limit of 1s")
    );
}

#[test]
fn memory_bomb_hits_the_memory_cap() {
    assert!(
        fails("run --allow-all --max-memory 32M $GUESTS/misbehave.wasm -- oom")
            .contains("exceeded its memory limit of 32 MiB")
    );
}

#[test]
fn sixteen_byte_interface_name() {
    assert!(
        fails("run --allow-all $GUESTS/misbehave.wasm -- long-name")
            .contains("is 16 bytes; the kernel allows at most 15")
    );
}

#[test]
fn invalid_cidr() {
    assert!(fails("run --allow-all $GUESTS/misbehave.wasm -- bad-cidr").contains("\"10.0.0.300/24\" is not a CIDR"));
}

#[test]
fn missing_namespace() {
    assert!(
        fails("run --allow-all $GUESTS/misbehave.wasm -- missing-ns").contains("namespace no-such-ns does not exist")
    );
}

#[test]
fn link_that_already_exists() {
    assert!(fails("run --allow-all $GUESTS/misbehave.wasm -- exists").contains("link lo already exists"));
}

#[test]
fn existing_namespace_for_recipe() {
    let out = sandboxed(
        r#"
ip netns add left
expect_fail $NETSH run --allow-all $RECIPES/netns-pair.wasm -- --left left --right right
ip netns list | grep -qx left
! ip netns list | grep -qx right
"#,
        30,
    );
    out.assert_ok();
    assert!(out.stdout.contains("namespace left already exists"), "{}", out.stdout);
}
