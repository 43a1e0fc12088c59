//! Names of native frames for people: one place for the rules that turn a symbol into
//! the text a ledger line or a CSV cell shows. It sits below both the heap profiles that
//! resolve frames (`heap/`) and the analysis that names sites (`analysis/sites.rs`), so
//! neither has to reach into the other for it.

/// A C++ name without its parameter lists and template arguments, for a line of text:
/// `at::(anonymous namespace)::wrapper_CPU_cat(c10::IListRef<at::Tensor> const&, long)`
/// reads `at::(anonymous namespace)::wrapper_CPU_cat()`, `a<b, c>::call(x)` reads
/// `a<…>::call()`. A name it cannot balance (`operator<`) is returned whole.
pub fn short_cpp_name(name: &str) -> String {
    const ANON: &str = "(anonymous namespace)";
    let marked = name.replace(ANON, "\u{1}");
    let (mut out, mut parens, mut angles) = (String::new(), 0i32, 0i32);
    for c in marked.chars() {
        match c {
            '(' => {
                if parens == 0 && angles == 0 {
                    out.push('(');
                }
                parens += 1;
            }
            ')' => {
                parens -= 1;
                if parens == 0 && angles == 0 {
                    out.push(')');
                }
            }
            '<' if parens == 0 => {
                if angles == 0 {
                    out.push_str("<…");
                }
                angles += 1;
            }
            '>' if parens == 0 => {
                angles -= 1;
                if angles == 0 {
                    out.push('>');
                }
            }
            c if parens == 0 && angles == 0 => out.push(c),
            _ => {}
        }
        if parens < 0 || angles < 0 {
            return name.to_string();
        }
    }
    if parens != 0 || angles != 0 {
        return name.to_string();
    }
    out.trim_end_matches(" const").replace('\u{1}', ANON)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpp_names_are_shortened_for_the_ledger() {
        assert_eq!(short_cpp_name("at::(anonymous namespace)::wrapper_CPU_cat(c10::IListRef<at::Tensor> const&, long)"), "at::(anonymous namespace)::wrapper_CPU_cat()");
        assert_eq!(short_cpp_name("c10::impl::wrap_kernel_functor_unboxed_<c10::F<std::tuple<at::Tensor> (at::Tensor const&)>, at::Tensor>::call(c10::OperatorKernel*) const"), "c10::impl::wrap_kernel_functor_unboxed_<…>::call()");
        assert_eq!(short_cpp_name("keep"), "keep");
        assert_eq!(short_cpp_name("bool operator<(a, b)"), "bool operator<(a, b)");
    }
}
