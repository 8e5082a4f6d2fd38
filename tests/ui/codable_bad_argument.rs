use hardlight::*;

#[codable(recurse)]
struct Tree {
    children: Vec<u32>,
}

fn main() {}
