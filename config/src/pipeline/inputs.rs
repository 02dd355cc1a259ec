//! A stage's `inputs`: `stage/output` or `stage/*` references to the outputs of stages above it,
//! each listed once.

use super::Context;
use super::InputRef;
use super::raw::Text;
use crate::diagnostic::{Diagnostic, line_col};
use crate::names;
use crate::source::{Unique, ellipsize};

/// At most this many input references per stage, once a matrix stage named as written counts
/// as each of its instances: a stage's inputs are copied into every one of its own instances, so
/// a short list must not become millions of references.
pub(crate) const MAX_INPUTS: usize = 1024;

/// The inputs of the stage at `index`.
pub(super) fn resolve(
    list: &[Text],
    index: usize,
    cx: &Context<'_>,
) -> Result<Vec<InputRef>, Diagnostic> {
    let src = &cx.src;
    let mut seen = Unique::default();
    let mut refs = Vec::with_capacity(list.len());
    for item in list {
        let input = parse_input_ref(item.get_ref()).map_err(|why| {
            src.error(
                item.span(),
                format!("invalid input `{}`: {why}", ellipsize(item.get_ref(), 60)),
            )
            .with_hint("write inputs as `stage/output-name` or `stage/*`")
        })?;
        let group = cx.names[..index]
            .iter()
            .position(|name| *name.get_ref() == input.stage);
        let instance = cx.instances[..index]
            .iter()
            .flatten()
            .any(|i| i.name == input.stage);
        if group.is_none() && !instance {
            return Err(not_earlier(item, &input, index, cx));
        }
        let key = input.to_string();
        seen.check(src, &key, item.span(), || {
            format!("input `{key}` is listed twice")
        })?;
        let count = group.map_or(1, |group| cx.instances[group].len());
        if refs.len() + count > MAX_INPUTS {
            return Err(src
                .error(
                    item.span(),
                    format!(
                        "stage `{}` reads more than {MAX_INPUTS} inputs: with `{key}` it reads {}, \
                         counting each matrix instance",
                        cx.names[index].get_ref(),
                        refs.len() + count
                    ),
                )
                .with_hint(format!(
                    "a stage reads at most {MAX_INPUTS} inputs; read every output of a stage \
                     with `stage/*`"
                )));
        }
        match group {
            // A matrix stage named as written means every one of its instances.
            Some(group) => refs.extend(cx.instances[group].iter().map(|i| InputRef {
                stage: i.name.clone(),
                name: input.name.clone(),
            })),
            None => refs.push(input),
        }
    }
    Ok(refs)
}

/// The error for an input that names the stage itself, a later stage or no stage at all.
fn not_earlier(item: &Text, input: &InputRef, index: usize, cx: &Context<'_>) -> Diagnostic {
    let own = cx.names[index].get_ref();
    let stage = &input.stage;
    let error = |message: String, hint: String| cx.src.error(item.span(), message).with_hint(hint);
    if own == stage {
        return error(
            format!("input `{input}` of stage `{own}` names the stage itself"),
            "a stage cannot read its own outputs; name an output of a stage above it".into(),
        );
    }
    if let Some(later) = cx.names[index + 1..]
        .iter()
        .find(|name| name.get_ref() == stage)
    {
        let line = line_col(cx.src.text, later.span().start).0;
        return error(
            format!("input `{input}` of stage `{own}` names `{stage}`, which runs later"),
            format!(
                "stages run top to bottom and `{stage}` is on line {line}: move it above \
                 `{own}`, or read from a stage that runs earlier"
            ),
        );
    }
    let message = format!("input `{input}` of stage `{own}` names no earlier stage `{stage}`");
    if index == 0 {
        return error(
            message,
            "the first stage has no earlier stages to read from; remove `inputs`".into(),
        );
    }
    let earlier: Vec<&str> = cx.names[..index]
        .iter()
        .map(|name| name.get_ref().as_str())
        .collect();
    error(
        message,
        format!(
            "inputs must name an output of an earlier stage; earlier stages are: {}",
            earlier.join(", ")
        ),
    )
}

fn parse_input_ref(text: &str) -> Result<InputRef, String> {
    let Some((stage, name)) = text.split_once('/') else {
        return Err("it has no `/` between the stage and the output name".into());
    };
    if stage.is_empty() {
        return Err("the stage part is empty".into());
    }
    if name == "*" {
        return Ok(InputRef {
            stage: stage.to_string(),
            name: None,
        });
    }
    names::check_output_name(name)?;
    Ok(InputRef {
        stage: stage.to_string(),
        name: Some(name.to_string()),
    })
}
