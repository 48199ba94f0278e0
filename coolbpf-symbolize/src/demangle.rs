//! Demangling of C++ (Itanium) and Rust (legacy and v0) symbol names.

use std::borrow::Cow;

/// How deep the C++ demangler may recurse: names in real binaries nest far less, and a
/// bound keeps hostile input from exhausting the stack.
const CPP_RECURSION_LIMIT: u32 = 256;

/// The demangled form of `name`, or `name` itself when it is not a mangled C++ or Rust
/// name (C names, GCC clones such as `f.constprop.0`, assembly labels).
///
/// Rust names come without their hash suffix (`core::ptr::drop_in_place<T>`, not
/// `…::h0123456789abcdef`): the hash tells functions apart for the linker, not for people.
pub fn demangle(name: &str) -> Cow<'_, str> {
    if is_rust(name) {
        if let Ok(demangled) = rustc_demangle::try_demangle(name) {
            return Cow::Owned(format!("{demangled:#}"));
        }
    }
    if name.starts_with("_Z") {
        if let Some(demangled) = demangle_cpp(name) {
            return Cow::Owned(demangled);
        }
    }
    Cow::Borrowed(name)
}

/// Whether `name` is a Rust symbol: v0 (`_R…`) or legacy (`_ZN…17h<16 hex digits>E`).
/// Legacy Rust names are valid Itanium names too, and the C++ demangler would keep the
/// hash and the `$LT$`-style escapes, so they are told apart by the hash.
fn is_rust(name: &str) -> bool {
    if name.starts_with("_R") {
        return true;
    }
    if !name.starts_with("_ZN") {
        return false;
    }
    // The hash is the last path element; a `.llvm.123`-style suffix may follow the `E`.
    let body = name.split('.').next().unwrap_or(name);
    let Some(body) = body.strip_suffix('E') else {
        return false;
    };
    let Some(tail) = body.len().checked_sub(19).and_then(|at| body.get(at..)) else {
        return false;
    };
    tail.strip_prefix("17h")
        .is_some_and(|hex| hex.bytes().all(|b| b.is_ascii_hexdigit()))
}

fn demangle_cpp(name: &str) -> Option<String> {
    let parse = cpp_demangle::ParseOptions::default().recursion_limit(CPP_RECURSION_LIMIT);
    let symbol = cpp_demangle::Symbol::new_with_options(name.as_bytes(), &parse).ok()?;
    let options = cpp_demangle::DemangleOptions::new().recursion_limit(CPP_RECURSION_LIMIT);
    symbol.demangle_with_options(&options).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn c_names_and_gcc_clones_stay_as_they_are() {
        assert_eq!(demangle("main"), "main");
        assert_eq!(demangle("compute.constprop.0"), "compute.constprop.0");
        assert_eq!(demangle(""), "");
    }

    #[test]
    fn cpp_names_are_demangled() {
        assert_eq!(demangle("_ZN2ns3FooIiE3barEi"), "ns::Foo<int>::bar(int)");
        assert_eq!(
            demangle("_ZZN3tst4mainEvENKUliE_clEi"),
            "tst::main()::{lambda(int)#1}::operator()(int) const"
        );
        assert!(demangle("_ZN3tst4workEv.cold").starts_with("tst::work()"));
    }

    #[test]
    fn rust_names_are_demangled_without_the_hash() {
        assert_eq!(
            demangle("_ZN4core3ptr13drop_in_place17h0123456789abcdefE"),
            "core::ptr::drop_in_place"
        );
        assert_eq!(
            demangle("_ZN4prog4main28_$u7b$$u7b$closure$u7d$$u7d$17h0123456789abcdefE"),
            "prog::main::{{closure}}"
        );
        assert_eq!(demangle("_RNvCs1234_4prog7compute"), "prog::compute");
    }

    #[test]
    fn garbage_is_returned_unchanged() {
        for junk in [
            "_Z",
            "_ZN",
            "_ZNxyz",
            "_R",
            "_RNv",
            "_ZN3foo17h0123E",
            "_Z\u{fffd}\u{0}",
        ] {
            assert_eq!(demangle(junk), junk);
        }
        let deep = format!("_Z{}", "PPPPPPPPPP".repeat(1000));
        let _ = demangle(&deep);
    }
}
