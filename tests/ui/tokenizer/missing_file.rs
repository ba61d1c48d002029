// A tokenizer file that does not exist: the error names the path and points at it. (An
// absolute path: a relative one is resolved against the crate's manifest directory, which for
// these cases is trybuild's scratch crate inside the target directory, and its absolute path
// would differ from one checkout to another.)
#[welt_runtime::welt_decoder(tokenizer = "/nonexistent/welt-ui-tokenizer/tokenizer.json")]
pub struct Missing;

fn main() {}
