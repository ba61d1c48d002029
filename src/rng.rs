//! The one seeded generator of the tool: the bench corpus, the large-vocabulary token streams,
//! gpu-check's inputs and the byte Llama's random weights all draw from it. It is kernels-gen's
//! (which also draws the synthetic vocabularies and the tests' inputs from it), so that there
//! is one definition in the workspace.

pub use kernels_gen::rng::SplitMix64;
