//! The one `bindgen!` of the host: Rust types and traits for `wit/`.
//! Imports are trappable so that a stopped run ends at its next host call.

wasmtime::component::bindgen!({
    path: "../wit",
    world: "recipe",
    imports: { default: async | trappable },
    exports: { default: async },
    additional_derives: [PartialEq, Eq],
});
