//! The human-readable report.

use std::io::{self, Write};

use runtime_core::engine::describe;

use super::Report;

/// Write `report` as aligned text.
pub fn write(out: &mut impl Write, report: &Report) -> io::Result<()> {
    let h = &report.host;
    writeln!(out, "HOST")?;
    let mut rows: Vec<(String, String)> = Vec::new();
    rows.push((
        "kernel".into(),
        h.kernel.clone().unwrap_or_else(|| "unknown".into()),
    ));
    match &h.cgroups {
        Some(c) => {
            rows.push(("cgroups".into(), c.mode.to_string()));
            if !c.v1.is_empty() {
                rows.push(("cgroup v1".into(), c.v1_controllers().join(",")));
            }
            if let Some(v2) = &c.v2 {
                let ctl = if v2.controllers.is_empty() {
                    "no controllers".to_string()
                } else {
                    v2.controllers.join(",")
                };
                rows.push((
                    "cgroup v2".into(),
                    format!("{} ({ctl})", v2.mount_point.display()),
                ));
            }
        }
        None => rows.push(("cgroups".into(), "unknown".into())),
    }
    rows.push((
        "/dev/char".into(),
        if h.dev_char { "present" } else { "missing" }.into(),
    ));
    rows.push((
        "systemd".into(),
        match (h.systemd.running, h.systemd.version) {
            (true, Some(v)) => format!("{v} (running)"),
            (true, None) => "running, version unknown".into(),
            (false, _) => "not running".into(),
        },
    ));
    if h.runtimes.is_empty() {
        rows.push(("runtimes".into(), "none found".into()));
    }
    for r in &h.runtimes {
        rows.push((
            r.kind.binary().to_string(),
            format!(
                "{} ({})",
                r.version.as_deref().unwrap_or("version unknown"),
                r.path.display()
            ),
        ));
    }
    let w = rows.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
    for (k, v) in &rows {
        writeln!(out, "  {k:<w$}  {v}")?;
    }

    writeln!(out)?;
    writeln!(out, "CONTAINERS: {}", report.containers.len())?;
    for c in &report.containers {
        writeln!(
            out,
            "  {:<16} {:<16} pid {:<8} {}",
            c.runtime,
            short_id(&c.id),
            c.pid,
            c.pod.as_deref().unwrap_or("-")
        )?;
    }
    writeln!(out)?;
    if report.findings.is_empty() {
        writeln!(out, "FINDINGS: none")?;
    } else {
        writeln!(out, "FINDINGS")?;
        let cols = [
            "CONTAINER",
            "POD",
            "CHECK",
            "SEVERITY",
            "REPAIRED",
            "MESSAGE",
        ];
        let body: Vec<[String; 6]> = report
            .findings
            .iter()
            .map(|f| {
                let (cid, pod) = match &f.container {
                    Some(c) => (
                        short_id(&c.id),
                        match (&c.pod_namespace, &c.pod_name) {
                            (Some(ns), Some(n)) => format!("{ns}/{n}"),
                            _ => "-".into(),
                        },
                    ),
                    None => ("(host)".into(), "-".into()),
                };
                [
                    cid,
                    pod,
                    f.check.to_string(),
                    f.severity.to_string(),
                    if f.repaired { "yes" } else { "no" }.into(),
                    f.message(),
                ]
            })
            .collect();
        let mut widths = cols.map(str::len);
        for row in &body {
            for (i, c) in row.iter().enumerate().take(5) {
                widths[i] = widths[i].max(c.len());
            }
        }
        let line = |out: &mut dyn Write, cells: [&str; 6]| -> io::Result<()> {
            writeln!(
                out,
                "  {:<w0$}  {:<w1$}  {:<w2$}  {:<w3$}  {:<w4$}  {}",
                cells[0],
                cells[1],
                cells[2],
                cells[3],
                cells[4],
                cells[5],
                w0 = widths[0],
                w1 = widths[1],
                w2 = widths[2],
                w3 = widths[3],
                w4 = widths[4],
            )
        };
        line(out, cols)?;
        for row in &body {
            line(out, [&row[0], &row[1], &row[2], &row[3], &row[4], &row[5]])?;
        }
    }
    if !report.plans.is_empty() {
        writeln!(out)?;
        writeln!(out, "REPAIRS")?;
        for p in &report.plans {
            let f = &report.findings[p.finding];
            let who = f
                .container
                .as_ref()
                .map_or("(host)".to_string(), |c| short_id(&c.id));
            match (&p.plan, &p.not_planned) {
                (Some(plan), _) => {
                    // One line per action in plain words, then why it never
                    // narrows access; `--output json` keeps the full plan.
                    writeln!(out, "  {who} {}:", p.check)?;
                    for a in &plan.actions {
                        for step in describe(a) {
                            writeln!(out, "    - {step}")?;
                        }
                    }
                    writeln!(out, "    why it is safe: {}", plan.safety)?;
                }
                (None, Some(why)) => writeln!(out, "  {who} {}: no repair: {why}", p.check)?,
                (None, None) => {}
            }
            if let Some(note) = &f.repair_note {
                writeln!(
                    out,
                    "    => {}{note}",
                    if f.repaired { "repaired: " } else { "" }
                )?;
            }
        }
    }
    if !h.unreadable.is_empty() {
        writeln!(out)?;
        writeln!(out, "NOT INSPECTED")?;
        for u in &h.unreadable {
            match &u.path {
                Some(p) => writeln!(out, "  {}: {} ({})", u.what, u.error, p.display())?,
                None => writeln!(out, "  {}: {}", u.what, u.error)?,
            }
        }
    }
    Ok(())
}

fn short_id(id: &str) -> String {
    id.chars().take(12).collect()
}
