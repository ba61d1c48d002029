//! One front end for a decoder's options, shared by `#[welt_decoder(...)]` ([`crate::expand()`]),
//! the build-script API ([`crate::build::DecoderBuild`]) and the `welt` CLI: each fills a
//! [`DecoderOptions`] (by field, or by name and text with [`DecoderOptions::set`]), then
//! [`DecoderOptions::validate`] reports every problem at once and [`DecoderOptions::spec`]
//! builds the [`DecoderSpec`]. Every [`Error`] carries the [`Subject`] it is about, so that a
//! front end can point at the argument (the macro) or name the flag (the CLI).
//!
//! ```
//! use kernels_gen::{DecoderOptions, Subject};
//! let mut o = DecoderOptions::default();
//! o.set("max_word_len", "24").unwrap();
//! o.set("layout", "classes").unwrap();
//! assert!(o.validate().is_empty());
//! o.set("eos", "</s>").unwrap(); // a token name without a tokenizer
//! assert_eq!(o.validate()[0].subject(), Subject::Eos);
//! ```

use std::path::PathBuf;
use std::str::FromStr;

use crate::spec::{DecoderSpec, Layout, Vocabulary, WordRule, DEFAULT_MAX_WORD_LEN};
use crate::{Error, Subject};

/// Everything a user can say about a decoder. The default is WeLT's: the UTF-8 byte
/// tokenizer, the word rule, 16 tokens per word, [`Layout::Auto`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DecoderOptions {
    /// A Hugging Face `tokenizer.json` (needs the `tokenizers` feature); `None`: WeLT's UTF-8
    /// byte tokenizer.
    pub tokenizer: Option<PathBuf>,
    /// The EOS token's content. Default: the first special added token with a usual EOS name
    /// ([`crate::tokenizer::EOS_CANDIDATES`]); none found is an error.
    pub eos: Option<String>,
    /// The PAD token's content, reported for finished rows. Default: the first special added
    /// token with a usual PAD name ([`crate::tokenizer::PAD_CANDIDATES`]), else EOS.
    pub pad: Option<String>,
    /// More tokens that end the word when generated (e.g. `<|eot_id|>`).
    pub stop_tokens: Vec<String>,
    /// The default word length limit in tokens (1..=65535).
    pub max_word_len: u16,
    /// How the entry table is laid out.
    pub layout: Layout,
    /// A word may not begin with a whitespace character that would trap it (see
    /// [`WordRule::forbid_leading_whitespace`]).
    pub forbid_leading_whitespace: bool,
}

impl Default for DecoderOptions {
    fn default() -> Self {
        DecoderOptions {
            tokenizer: None,
            eos: None,
            pad: None,
            stop_tokens: Vec::new(),
            max_word_len: DEFAULT_MAX_WORD_LEN,
            layout: Layout::Auto,
            forbid_leading_whitespace: false,
        }
    }
}

/// The option names [`DecoderOptions::set`] takes, as the macro spells them (the CLI spells
/// them with `-` for `_`).
pub const OPTION_NAMES: [&str; 7] = [
    "tokenizer",
    "eos",
    "pad",
    "stop_token",
    "max_word_len",
    "layout",
    "forbid_leading_whitespace",
];

impl DecoderOptions {
    /// Sets the option `name` (one of [`OPTION_NAMES`]; `-` is read as `_`) from its text:
    /// a path or token content as is, `max_word_len` as a decimal integer, `layout` as `auto`,
    /// `direct` or `classes`, `forbid_leading_whitespace` as `true` or `false`. `stop_token`
    /// adds one more each time. What is checked across options is left to [`Self::validate`].
    pub fn set(&mut self, name: &str, value: &str) -> Result<(), Error> {
        match name.replace('-', "_").as_str() {
            "tokenizer" => self.tokenizer = Some(PathBuf::from(value)),
            "eos" => self.eos = Some(value.to_string()),
            "pad" => self.pad = Some(value.to_string()),
            "stop_token" => self.stop_tokens.push(value.to_string()),
            "max_word_len" => {
                self.max_word_len = value.parse().map_err(|_| max_word_len_error(value))?;
            }
            "layout" => self.layout = value.parse()?,
            "forbid_leading_whitespace" => {
                self.forbid_leading_whitespace = match value {
                    "true" => true,
                    "false" => false,
                    _ => {
                        return Err(Error::new(format!(
                            "forbid_leading_whitespace is `true` or `false`, not `{value}`"
                        ))
                        .about(Subject::ForbidLeadingWhitespace))
                    }
                }
            }
            _ => {
                return Err(Error::new(format!(
                    "unknown option `{name}`; expected one of {}",
                    OPTION_NAMES.join(", ")
                )))
            }
        }
        Ok(())
    }

    /// Every problem with these options, each about its option (none: they are valid, up to
    /// what only reading the tokenizer file can tell).
    pub fn validate(&self) -> Vec<Error> {
        let mut errors = Vec::new();
        if self.max_word_len == 0 {
            errors.push(max_word_len_error("0"));
        }
        if self.tokenizer.is_none() {
            let named = [(Subject::Eos, &self.eos), (Subject::Pad, &self.pad)]
                .into_iter()
                .filter_map(|(s, n)| n.as_ref().map(|n| (s, n)))
                .chain(
                    self.stop_tokens
                        .iter()
                        .enumerate()
                        .map(|(i, n)| (Subject::StopToken(i), n)),
                );
            for (subject, name) in named {
                errors.push(
                    Error::new(format!(
                        "`{name}` names a token of a custom tokenizer, and no tokenizer is given \
                         (`tokenizer = \"...\"`, CLI `--tokenizer FILE`); the built-in byte \
                         tokenizer's EOS is 0x03 and its PAD 0x00"
                    ))
                    .about(subject),
                );
            }
        }
        if cfg!(not(feature = "tokenizers")) && self.tokenizer.is_some() {
            errors.push(no_tokenizers_feature());
        }
        errors
    }

    /// The vocabulary: the tokenizer file's (with EOS, PAD and stop tokens), or WeLT's bytes.
    pub fn vocabulary(&self) -> Result<Vocabulary, Error> {
        if let Some(e) = self.validate().into_iter().next() {
            return Err(e);
        }
        match &self.tokenizer {
            None => Ok(Vocabulary::utf8_bytes()),
            #[cfg(feature = "tokenizers")]
            Some(path) => crate::tokenizer::load_file(path, self),
            #[cfg(not(feature = "tokenizers"))]
            Some(_) => Err(no_tokenizers_feature()),
        }
    }

    /// The word rule: WeLT's, with [`Self::forbid_leading_whitespace`].
    pub fn rule(&self) -> WordRule {
        WordRule::default().forbid_leading_whitespace(self.forbid_leading_whitespace)
    }

    /// The spec these options describe (the first problem of [`Self::validate`] if any, or of
    /// reading the tokenizer).
    pub fn spec(&self) -> Result<DecoderSpec, Error> {
        Ok(DecoderSpec {
            vocab: self.vocabulary()?,
            rule: self.rule(),
            max_word_len: self.max_word_len,
            layout: self.layout,
        })
    }
}

fn no_tokenizers_feature() -> Error {
    Error::new(
        "custom tokenizers need the `tokenizers` feature of welt-runtime: \
         `welt-runtime = { version = \"...\", features = [\"tokenizers\"] }`",
    )
    .about(Subject::Tokenizer)
}

fn max_word_len_error(value: &str) -> Error {
    Error::new(format!(
        "the word length limit is an integer in 1..=65535 (tokens), not `{value}`"
    ))
    .about(Subject::MaxWordLen)
}

impl FromStr for Layout {
    type Err = Error;

    fn from_str(s: &str) -> Result<Layout, Error> {
        match s {
            "auto" => Ok(Layout::Auto),
            "direct" => Ok(Layout::Direct),
            "classes" => Ok(Layout::Classes),
            _ => Err(
                Error::new(format!("unknown layout `{s}`; expected auto, direct or classes"))
                    .about(Subject::Layout),
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_reads_every_option_by_name() {
        let mut o = DecoderOptions::default();
        for (name, value) in [
            ("tokenizer", "t.json"),
            ("eos", "</s>"),
            ("pad", "<pad>"),
            ("stop-token", "a"),
            ("stop_token", "b"),
            ("max-word-len", "7"),
            ("layout", "direct"),
            ("forbid_leading_whitespace", "true"),
        ] {
            o.set(name, value).unwrap();
        }
        assert_eq!(
            o,
            DecoderOptions {
                tokenizer: Some("t.json".into()),
                eos: Some("</s>".into()),
                pad: Some("<pad>".into()),
                stop_tokens: vec!["a".into(), "b".into()],
                max_word_len: 7,
                layout: Layout::Direct,
                forbid_leading_whitespace: true,
            }
        );
    }

    #[test]
    fn bad_values_name_their_option() {
        let mut o = DecoderOptions::default();
        for (name, value, subject) in [
            ("max_word_len", "70000", Subject::MaxWordLen),
            ("max_word_len", "-1", Subject::MaxWordLen),
            ("layout", "weird", Subject::Layout),
            (
                "forbid_leading_whitespace",
                "yes",
                Subject::ForbidLeadingWhitespace,
            ),
            ("nope", "nope", Subject::Spec),
        ] {
            let e = o.set(name, value).unwrap_err();
            assert_eq!(e.subject(), subject, "{name}={value}: {e}");
            assert!(e.message().contains(value), "{e}");
        }
        assert_eq!(o, DecoderOptions::default(), "a refused value changes nothing");
    }

    #[test]
    fn validation_reports_every_problem_at_once() {
        let o = DecoderOptions {
            eos: Some("</s>".into()),
            pad: Some("<pad>".into()),
            stop_tokens: vec!["x".into(), "y".into()],
            max_word_len: 0,
            ..Default::default()
        };
        let subjects: Vec<Subject> = o.validate().iter().map(Error::subject).collect();
        assert_eq!(
            subjects,
            [
                Subject::MaxWordLen,
                Subject::Eos,
                Subject::Pad,
                Subject::StopToken(0),
                Subject::StopToken(1)
            ]
        );
        assert_eq!(o.spec().unwrap_err().subject(), Subject::MaxWordLen);
        assert!(DecoderOptions::default().validate().is_empty());
    }

    #[test]
    fn the_default_options_are_the_default_spec() {
        assert_eq!(
            DecoderOptions::default().spec().unwrap(),
            DecoderSpec::utf8_bytes()
        );
        let o = DecoderOptions {
            max_word_len: 3,
            layout: Layout::Classes,
            ..Default::default()
        };
        let s = o.spec().unwrap();
        assert_eq!((s.max_word_len, s.layout), (3, Layout::Classes));
    }
}
