// Only a unit struct: an enum is an error, pointing at its name.
#[welt_runtime::welt_decoder]
pub enum Words {
    A,
}

fn main() {}
