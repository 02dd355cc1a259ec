//! `wordcount < file`: prints lines, words and bytes of standard input.

use std::io::Read;

fn main() {
    let mut text = String::new();
    if let Err(err) = std::io::stdin().read_to_string(&mut text) {
        eprintln!("wordcount: {err}");
        std::process::exit(1);
    }
    let counts = wordcount::count(&text);
    println!("{} {} {}", counts.lines, counts.words, counts.bytes);
}
