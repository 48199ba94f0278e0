//! A Rust test program for the symbolizer's correctness test: generics, closures,
//! iterator chains, trait objects and inlined standard library code. Every function the
//! test checks is in this crate (`prog`).

use std::collections::HashMap;

trait Shape {
    fn area(&self) -> f64;
}

struct Rect(f64, f64);
struct Circle(f64);

impl Shape for Rect {
    fn area(&self) -> f64 {
        self.0 * self.1
    }
}

impl Shape for Circle {
    fn area(&self) -> f64 {
        std::f64::consts::PI * self.0 * self.0
    }
}

#[inline(always)]
fn square<T: std::ops::Mul<Output = T> + Copy>(x: T) -> T {
    x * x
}

#[inline(never)]
fn sum_squares<T>(v: &[T]) -> T
where
    T: std::ops::Mul<Output = T> + std::ops::Add<Output = T> + Copy + Default,
{
    v.iter().fold(T::default(), |acc, &x| acc + square(x))
}

#[inline(never)]
fn total_area(shapes: &[Box<dyn Shape>]) -> f64 {
    shapes.iter().map(|s| s.area()).sum()
}

#[inline(never)]
fn count_words(words: &[&str]) -> HashMap<String, usize> {
    let mut counts = HashMap::new();
    for w in words {
        *counts.entry((*w).to_string()).or_insert(0) += 1;
    }
    counts
}

#[inline(never)]
fn sorted_by_key(mut v: Vec<i64>, k: i64) -> Vec<i64> {
    v.sort_by_key(|x| (x % k, *x));
    v
}

fn main() {
    let n = std::env::args().count() as i64;
    let v: Vec<i64> = (0..100).map(|i| i * 7 + n).collect();
    let f: Vec<f64> = v.iter().map(|&x| x as f64 / 3.0).collect();
    let shapes: Vec<Box<dyn Shape>> = vec![Box::new(Rect(2.0, n as f64)), Box::new(Circle(n as f64))];
    let counts = count_words(&["a", "b", "a", "c"]);
    let sorted = sorted_by_key(v.clone(), 7);
    println!(
        "{} {} {} {} {}",
        sum_squares(&v),
        sum_squares(&f),
        total_area(&shapes),
        counts.len(),
        sorted[0]
    );
}
