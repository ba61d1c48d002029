// A tokenizer file that cannot be read: the error points at the path string. (An absolute
// path, so that the message does not depend on where trybuild's scratch crate lives: a
// relative path is resolved against that crate's manifest directory, inside the target dir.)
#[welt_runtime::welt_decoder(tokenizer = "/nonexistent/welt-ui-test/tok.json")]
pub struct CustomWords;

fn main() {}
