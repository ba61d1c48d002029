// The decoder type carries no data: fields are an error, pointing at them.
#[welt_runtime::welt_decoder]
pub struct Words {
    limit: u16,
}

#[welt_runtime::welt_decoder]
pub struct Tuple(u8);

fn main() {}
