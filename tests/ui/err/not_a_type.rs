// Only a unit struct: a function and a generic struct are errors.
#[welt_runtime::welt_decoder]
fn words() {}

#[welt_runtime::welt_decoder]
pub struct Generic<T>;

fn main() {}
