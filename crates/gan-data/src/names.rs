//! Parsing the named values of a closed set (toy distributions, activations, losses) from the
//! names the command line and `config.json` use.

/// The member of `all` whose `name` is `s`.
///
/// # Errors
/// The text `unknown WHAT "s" (expected a, b or c)`, listing the names of `all` in order, for
/// the caller to wrap in its error type.
pub fn find_by_name<T: Copy>(
    all: &[T],
    name: impl Fn(T) -> &'static str,
    what: &str,
    s: &str,
) -> std::result::Result<T, String> {
    all.iter().copied().find(|&v| name(v) == s).ok_or_else(|| {
        let names: Vec<&str> = all.iter().map(|&v| name(v)).collect();
        let expected = match names.split_last() {
            Some((last, rest)) if !rest.is_empty() => format!("{} or {last}", rest.join(", ")),
            _ => names.join(""),
        };
        format!("unknown {what} {s:?} (expected {expected})")
    })
}

#[cfg(test)]
mod tests {
    use super::find_by_name;

    #[test]
    fn finds_a_name_and_lists_the_names_otherwise() {
        let all = [1u8, 2, 3];
        let name = |v: u8| ["one", "two", "three"][v as usize - 1];
        assert_eq!(find_by_name(&all, name, "number", "two"), Ok(2));
        assert_eq!(
            find_by_name(&all, name, "number", "four"),
            Err("unknown number \"four\" (expected one, two or three)".to_string())
        );
        assert_eq!(
            find_by_name(&[1u8], name, "number", "x"),
            Err("unknown number \"x\" (expected one)".to_string())
        );
    }
}
