// `forbid_leading_whitespace` takes `true` or `false`, not a string; `layout` a string.
#[welt_runtime::welt_decoder(forbid_leading_whitespace = "yes", layout = direct)]
pub struct Words;

fn main() {}
