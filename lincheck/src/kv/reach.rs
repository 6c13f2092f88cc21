//! Pruning for the KV model: can a rejected operation still become acceptable?
//!
//! Used by `KvModel::may_become_acceptable`, which must never answer "no" wrongly. The test
//! over-approximates what the pending writes can do: the value an operation needs must be
//! reachable as a *base* (the current value, a pending Put's or Cas's new value, or empty
//! after a pending Delete) followed by nothing or by bytes that begin with some pending
//! Append's value. Anything this cannot rule out counts as reachable.
//!
//! This is what keeps append-heavy histories cheap: once the search has put appends in an
//! order that a pending read contradicts (or applied an append the read never saw), it gives
//! up on that order at once instead of trying every order of the remaining appends first.

use super::{KvInput, KvOutput, KvState};

/// The value an operation needs to see to be accepted, if the model can say.
enum Target<'a> {
    Absent,
    Present(&'a [u8]),
}

fn target_of<'a>(input: &'a KvInput, output: &'a KvOutput) -> Option<Target<'a>> {
    match (input, output) {
        (KvInput::Get { .. }, KvOutput::Value(None)) => Some(Target::Absent),
        (KvInput::Get { .. }, KvOutput::Value(Some(value))) => Some(Target::Present(value)),
        (KvInput::Cas { expected, .. }, KvOutput::Swapped(true)) if expected.is_empty() => {
            Some(Target::Absent)
        }
        (KvInput::Cas { expected, .. }, KvOutput::Swapped(true)) => Some(Target::Present(expected)),
        _ => None,
    }
}

/// Whether `(input, output)` might be accepted after some of `pending` are applied to
/// `state`. `false` is definite; `true` may be wrong.
pub(super) fn may_become_acceptable(
    state: &KvState,
    input: &KvInput,
    output: &KvOutput,
    pending: &mut dyn Iterator<Item = (&KvInput, &KvOutput)>,
) -> bool {
    let Some(target) = target_of(input, output) else {
        return true;
    };
    let mut bases: Vec<&[u8]> = Vec::new();
    let mut appends: Vec<&[u8]> = Vec::new();
    let mut deletes = false;
    for (input, output) in pending {
        match (input, output) {
            (KvInput::Put { value, .. }, _) => bases.push(value),
            (KvInput::Cas { new_value, .. }, out) if *out != KvOutput::Swapped(false) => {
                bases.push(new_value);
            }
            (KvInput::Delete { .. }, _) => deletes = true,
            (KvInput::Append { value, .. }, _) if !value.is_empty() => appends.push(value),
            _ => {}
        }
    }
    let value = match target {
        Target::Absent => return !state.is_present() || deletes,
        Target::Present(value) => value,
    };
    // What is left of `value` after `prefix_len` bytes of base must start with an append.
    let rest_reachable = |prefix_len: usize| {
        let rest = &value[prefix_len..];
        rest.is_empty() || appends.iter().any(|chunk| rest.starts_with(chunk))
    };
    if state.is_prefix_of(value) && rest_reachable(state.len()) {
        return true;
    }
    if deletes && rest_reachable(0) {
        return true;
    }
    bases
        .iter()
        .any(|base| value.starts_with(base) && rest_reachable(base.len()))
}
