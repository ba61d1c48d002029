//! `welt bench` (being written).
/// Options.
#[derive(Debug, Default, Clone)]
pub struct Options {
    /// JSON output.
    pub json: bool,
    /// Fewer steps.
    pub quick: bool,
}
/// Runs the benchmark.
pub fn run(_o: &Options) -> Result<(), Box<dyn std::error::Error>> {
    Err("not yet".into())
}
