//! Which tokens are EOS and PAD when the caller names none, and the note that says so.

use super::Names;
use crate::{DecoderOptions, Error, Subject};

/// Names EOS usually has, tried in order when the caller names none; only *special* added
/// tokens are candidates (an ordinary token or a non-special added token spelled `</s>` is
/// text, not EOS). Ends of documents come first, then ends of turns: a file with both (Qwen 3,
/// Llama 3, Gemma 3) gets the end of document, and the report says which others are present.
pub const EOS_CANDIDATES: &[&str] = &[
    "</s>",
    "<|endoftext|>",
    "<|end_of_text|>",
    "<eos>",
    "<\u{ff5c}end\u{2581}of\u{2581}sentence\u{ff5c}>",
    "<|eos|>",
    "[EOS]",
    "<|im_end|>",
    "<|eot_id|>",
    "<end_of_turn>",
    "<|end|>",
    "<|EOT|>",
];
/// Names PAD usually has, tried in order when the caller names none (then EOS); only
/// special added tokens are candidates.
pub const PAD_CANDIDATES: &[&str] = &[
    "<pad>",
    "<|pad|>",
    "[PAD]",
    "<|finetune_right_pad_id|>",
    "<\u{ff5c}\u{2581}pad\u{2581}\u{ff5c}>",
];

/// EOS and PAD of a tokenizer, with a note on how each was chosen (for `--emit stats`).
pub(super) struct Roles {
    pub(super) eos: u32,
    pub(super) pad: u32,
    pub(super) note: String,
}

/// The id of the token spelled `name`; `what` names its role in the error.
pub(super) fn id_of(tk: &dyn Names, what: &str, name: &str, subject: Subject) -> Result<u32, Error> {
    tk.token_to_id(name).ok_or_else(|| {
        Error::new(format!("unknown {what} token `{name}`: not in the vocabulary")).about(subject)
    })
}

/// Special added tokens with a usual name, in the order of `names`.
fn special(tk: &dyn Names, names: &[&str]) -> Vec<(u32, String)> {
    let mut found: Vec<(usize, u32, String)> = tk
        .added()
        .into_iter()
        .filter(|(_, _, special)| *special)
        .filter_map(|(id, content, _)| {
            names
                .iter()
                .position(|n| *n == content)
                .map(|rank| (rank, id, content))
        })
        .collect();
    found.sort();
    found.into_iter().map(|(_, id, c)| (id, c)).collect()
}

/// EOS and PAD as `opts` names them, else the first special added tokens with a usual name
/// ([`EOS_CANDIDATES`], [`PAD_CANDIDATES`]); PAD falls back to EOS, no EOS is an error.
pub(super) fn choose(tk: &dyn Names, opts: &DecoderOptions) -> Result<Roles, Error> {
    let mut note = Vec::new();
    let eos = match &opts.eos {
        Some(name) => id_of(tk, "EOS", name, Subject::Eos)?,
        None => {
            let found = special(tk, EOS_CANDIDATES);
            let Some((id, _)) = found.first() else {
                return Err(Error::new(format!(
                    "no EOS token found: no special added token of the tokenizer is named {}; name it with \
                     `eos = \"...\"` (macro), `.eos(\"...\")` (build script) or `--eos TOKEN` (CLI)",
                    EOS_CANDIDATES.join(", ")
                ))
                .about(Subject::Eos));
            };
            note.push("EOS: the first special added token with a usual EOS name".to_string());
            if found.len() > 1 {
                let others: Vec<String> = found[1..].iter().map(|(i, c)| format!("{i} `{c}`")).collect();
                note.push(format!(
                    "also present, not stops unless named as stop tokens: {}",
                    others.join(", ")
                ));
            }
            *id
        }
    };
    let pad = match &opts.pad {
        Some(name) => id_of(tk, "PAD", name, Subject::Pad)?,
        None => match special(tk, PAD_CANDIDATES).first() {
            Some((id, _)) => {
                note.push("PAD: the first special added token with a usual PAD name".into());
                *id
            }
            None => {
                note.push("PAD: EOS, no special added token has a usual PAD name".into());
                eos
            }
        },
    };
    Ok(Roles {
        eos,
        pad,
        note: note.join("; "),
    })
}

#[cfg(test)]
mod tests {
    use super::super::tests::{file, load, load_opts};
    use super::super::Token;
    use crate::DecoderOptions;
    use crate::Subject;

    #[test]
    fn default_eos_and_pad_are_special_added_tokens_with_usual_names() {
        let eos_pad = |json: &str| {
            let v = load(json).unwrap();
            (v.eos().unwrap(), v.pad(), v.roles())
        };
        // Qwen 3: an ordinary BPE token `</s>` is text; both ends of text are special.
        let (eos, pad, roles) = eos_pad(&file(
            &[("</s>", 256)],
            &[(257, "<|endoftext|>", true), (258, "<|im_end|>", true)],
        ));
        assert_eq!((eos, pad), (257, 257));
        assert!(
            roles.contains("258 `<|im_end|>`"),
            "the other end token is named: {roles}"
        );
        // Gemma 3: a non-special added `</s>`, the special `<eos>` and `<pad>`.
        let (eos, pad, _) = eos_pad(&file(
            &[],
            &[(256, "</s>", false), (257, "<eos>", true), (258, "<pad>", true)],
        ));
        assert_eq!((eos, pad), (257, 258));
        // DeepSeek-V3's names.
        let (eos, pad, _) = eos_pad(&file(
            &[],
            &[
                (256, "<\u{ff5c}begin\u{2581}of\u{2581}sentence\u{ff5c}>", true),
                (257, "<\u{ff5c}end\u{2581}of\u{2581}sentence\u{ff5c}>", true),
                (258, "<\u{ff5c}\u{2581}pad\u{2581}\u{ff5c}>", true),
            ],
        ));
        assert_eq!((eos, pad), (257, 258));
        // Llama 3 ends turns with another token; the end of text comes first.
        let (eos, _, roles) = eos_pad(&file(
            &[],
            &[(256, "<|eot_id|>", true), (257, "<|end_of_text|>", true)],
        ));
        assert_eq!(eos, 257);
        assert!(roles.contains("256 `<|eot_id|>`"), "{roles}");
        // A named EOS that is an ordinary token becomes special (it ends the word).
        let o = DecoderOptions {
            eos: Some("</s>".into()),
            ..Default::default()
        };
        let v = load_opts(&file(&[("</s>", 256)], &[(257, "<pad>", true)]), &o).unwrap();
        assert_eq!((v.eos(), v.pad()), (Some(256), 257));
        assert_eq!(v.tokens()[256], Token::Special("</s>".into()));
    }

    #[test]
    fn no_eos_found_says_how_to_name_one() {
        for json in [
            file(&[("</s>", 256)], &[(257, "<s>", true)]),
            file(&[], &[(256, "</s>", false)]),
        ] {
            let e = load(&json).unwrap_err();
            assert_eq!(e.subject(), Subject::Eos);
            assert!(e.message().contains("no EOS token found"), "{e}");
            assert!(
                e.message().contains("--eos") && e.message().contains("eos = \"...\""),
                "{e}"
            );
        }
    }
}
