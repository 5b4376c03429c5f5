//! Prints the placements table generated from the built-in placement files
//! (`analysis/placements/*.json`); `analysis/placements/README.md` holds it below its
//! introduction, and a test keeps the two equal.
//!
//! ```text
//! cargo run --example placement_table
//! ```

fn main() {
    print!("{}", spannorm::placement::table());
}
