//! `linecut doctor`: what namespace mode needs of this machine, each missing piece with its
//! fix; `--clean` removes what killed namespace runs left behind.

use clap::Args;
use std::process::ExitCode;

#[derive(Debug, Args)]
pub struct DoctorArgs {
    /// Remove namespaces, links and nftables tables that namespace runs left when they were
    /// killed (never those of a run still going).
    #[arg(long)]
    clean: bool,
}

pub fn doctor(args: DoctorArgs) -> anyhow::Result<ExitCode> {
    let checks = linecut_netns::doctor::checks();
    for c in &checks {
        println!(
            "{} {:<58} {}",
            if c.ok { "ok     " } else { "MISSING" },
            c.what,
            c.detail
        );
        if !c.ok {
            println!("        fix: {}", c.fix);
        }
    }
    if args.clean {
        if checks.iter().all(|c| c.ok) {
            let removed = linecut_netns::leftovers::clean()?;
            if removed.is_empty() {
                println!("nothing left behind by namespace runs");
            }
            for id in removed {
                println!("removed what run {id} left (namespaces, links, nftables tables)");
            }
        } else {
            eprintln!("linecut: doctor: --clean needs the missing pieces above");
        }
    }
    Ok(match linecut_netns::doctor::refusal(&checks) {
        None => ExitCode::SUCCESS,
        Some(message) => {
            eprintln!("linecut: {message}");
            ExitCode::from(2)
        }
    })
}
