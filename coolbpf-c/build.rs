//! Gives the shared library the soname it is installed under (`libcoolbpf.so.0`, see
//! install.sh), so programs linked with `-lcoolbpf` load it by that name.

fn main() {
    println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,libcoolbpf.so.0");
}
