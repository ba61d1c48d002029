// Token names need a tokenizer: each is reported at its string, all at once.
#[welt_runtime::welt_decoder(eos = "</s>", stop_token = "<eot>")]
pub struct NoTokenizer;

fn main() {}
