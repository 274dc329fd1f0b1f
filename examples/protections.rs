//! Shows, on this machine, what a LockedBuffer gets: run with
//! `cargo run --example protections`.
//!
//! This is the stand-in for `memguard doctor` until that command exists.

use std::io::Read;

fn main() -> Result<(), memguard::Error> {
    let mut key = memguard::LockedBuffer::random(32)?;
    let page = key.page_size();
    let address = key.bytes().as_ptr() as usize;
    println!("memguard protections on this machine");
    println!("  page size                 {page} bytes");
    println!(
        "  data ends at page end     {}",
        yes((address + key.len()).is_multiple_of(page))
    );
    println!("  frozen (read-only)        {}", yes(!key.is_mutable()));
    println!("  what this system gave it  {}", key.protections());
    println!(
        "  hidden from forks         {}",
        yes(key.protections().hidden_from_forks())
    );
    println!(
        "  process hardened          {}",
        yes(memguard::is_process_hardened())
    );
    let flags = vm_flags(address).unwrap_or_default();
    println!("  smaps VmFlags             {flags}");
    for (flag, meaning) in [
        ("lo", "locked in RAM (never swapped)"),
        ("dd", "left out of core dumps"),
        ("wf", "wiped in forked children"),
    ] {
        let held = flags.split_whitespace().any(|f| f == flag);
        println!("    {flag}: {meaning:32} {}", yes(held));
    }
    key.melt()?;
    key.wipe()?;
    println!(
        "  wiped                     {}",
        yes(key.equal_to(&[0; 32]))
    );
    memguard::purge();
    println!("  purged                    {}", yes(!key.is_alive()));
    Ok(())
}

fn yes(held: bool) -> &'static str {
    if held {
        "yes"
    } else {
        "NO"
    }
}

/// The VmFlags line of the mapping that contains `address`.
fn vm_flags(address: usize) -> Option<String> {
    let mut smaps = String::new();
    std::fs::File::open("/proc/self/smaps")
        .ok()?
        .read_to_string(&mut smaps)
        .ok()?;
    let mut inside = false;
    for line in smaps.lines() {
        if let Some((range, _)) = line.split_once(' ') {
            if let Some((start, end)) = range.split_once('-') {
                if let (Ok(s), Ok(e)) = (
                    usize::from_str_radix(start, 16),
                    usize::from_str_radix(end, 16),
                ) {
                    inside = (s..e).contains(&address);
                    continue;
                }
            }
        }
        if inside {
            if let Some(flags) = line.strip_prefix("VmFlags:") {
                return Some(flags.trim().to_string());
            }
        }
    }
    None
}
