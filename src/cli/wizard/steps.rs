//! The wizard's steps: each asks its questions and checks the answers.

use std::io::{BufRead, Write};
use std::path::PathBuf;

use stripe_xdm::catalog::{Catalog, Dataset, NewDataset, DEFAULT_PARTIAL_INGESTION_PERCENT};
use stripe_xdm::map::{substitute_tenant, Mapping};
use stripe_xdm::schedule::{Frequency, Schedule, ScheduleError, START_TIME_GRACE_SECS};
use stripe_xdm::xdm::XdmSchema;
use stripe_xdm::Resource;

use super::super::dataflows::{AlertArg, DataflowCreateArgs};
use super::super::flows::cat_err;
use super::super::CliError;
use super::{pick, Check, DatasetChoice, Prompter, Result};

/// Connect: an existing account, by number or name (accounts are added with `accounts add`).
pub(super) fn step_account<R: BufRead, W: Write>(
    p: &mut Prompter<R, W>,
    cat: &Catalog,
) -> Result<String> {
    let accounts = cat.list_accounts().map_err(cat_err)?;
    if accounts.is_empty() {
        p.say("  No Stripe account yet. Add one first, then run this again:")?;
        p.say("    stripe-xdm accounts add NAME   (asks for the key; or --api-key-env VAR / --api-key-file PATH)")?;
        return Err(CliError::usage(
            "no Stripe account: add one with `stripe-xdm accounts add NAME` first",
        ));
    }
    for (i, a) in accounts.iter().enumerate() {
        let desc = a.description.as_deref().unwrap_or("");
        p.say(format!("  {}) {}  {}  {desc}", i + 1, a.name, a.key_masked))?;
    }
    let names: Vec<String> = accounts.into_iter().map(|a| a.name).collect();
    let default = (names.len() == 1).then(|| names[0].clone());
    p.ask("Account (number or name)", default.as_deref(), |a| {
        pick(&names, a)
            .map(|i| names[i].clone())
            .ok_or_else(|| format!("no account {a:?}: pick 1–{} or a listed name", names.len()))
    })
}

/// Select data: one of the six resource paths.
pub(super) fn step_resource<R: BufRead, W: Write>(p: &mut Prompter<R, W>) -> Result<Resource> {
    let names: Vec<String> = Resource::ALL.iter().map(|r| r.path().to_string()).collect();
    for (i, n) in names.iter().enumerate() {
        p.say(format!("  {}) {n}", i + 1))?;
    }
    p.ask("Resource path (number or name)", None, |a| {
        let norm = a.trim().to_ascii_lowercase().replace([' ', '-'], "_");
        pick(&names, &norm)
            .map(|i| Resource::ALL[i])
            .or_else(|| norm.parse().ok())
            .ok_or_else(|| format!("no resource {a:?}: pick 1–6 or one of {}", names.join(", ")))
    })
}

/// The dataset's schema, to check the mapping against (`None` if it cannot be read).
fn dataset_schema(cat: &Catalog, dataset: &DatasetChoice) -> Option<XdmSchema> {
    match dataset {
        DatasetChoice::Given(n) => cat.dataset(n).and_then(|d| d.schema()).ok(),
        DatasetChoice::Existing(d) => d.schema().ok(),
        DatasetChoice::New(d) => XdmSchema::from_json_str(&d.schema_json).ok(),
    }
}

/// What is wrong when `mapping`'s output does not fit `schema` (the check `dataflows create`
/// makes: [`stripe_xdm::app::dataflows::check_fits_schema`]).
fn misfit(mapping: &Mapping, resource: Resource, schema: &XdmSchema) -> Option<String> {
    use stripe_xdm::app::{dataflows::check_fits_schema, AppError};
    use tokio::runtime::{Builder, Handle, RuntimeFlavor};
    let check = check_fits_schema("(new)", mapping, resource, schema, "the dataset");
    let result = match Handle::try_current() {
        Ok(h) if h.runtime_flavor() == RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(|| h.block_on(check))
        }
        // Cannot wait here: `dataflows create` checks it right after the wizard anyway.
        Ok(_) => return None,
        Err(_) => Builder::new_current_thread().build().ok()?.block_on(check),
    };
    let Err(AppError::Misfit { problems, .. }) = result else {
        return None;
    };
    let more = match problems.len() {
        n if n > 3 => format!(" ({n} errors, the first 3 shown)"),
        _ => String::new(),
    };
    Some(format!(
        "mapping {} does not fit the dataset's schema{more}:\n    {}",
        mapping.origin,
        problems[..problems.len().min(3)].join("\n    ")
    ))
}

/// The mapping file (`None` = the built-in one), checked against the dataset's schema; a misfit
/// is re-asked.
pub(super) fn step_mapping<R: BufRead, W: Write>(
    p: &mut Prompter<R, W>,
    cat: &Catalog,
    resource: Resource,
    dataset: &DatasetChoice,
    tenant: &str,
) -> Result<Option<PathBuf>> {
    let schema = dataset_schema(cat, dataset);
    let builtin = format!("built-in sql/{resource}.sql");
    p.ask("Mapping SQL file", Some(&builtin), |a| {
        let (mapping, path) = match a == builtin {
            true => (Mapping::builtin(resource, tenant), None),
            false => {
                let m = Mapping::from_file(a.as_ref(), tenant).map_err(|e| e.to_string())?;
                (m, Some(PathBuf::from(a)))
            }
        };
        match schema.as_ref().and_then(|s| misfit(&mapping, resource, s)) {
            Some(why) => Err(format!(
                "{why}\n  give a mapping that fits, or run the wizard again and pick another dataset"
            )),
            None => Ok(path),
        }
    })
}

/// A dataset's Profile, error diagnostics and partial ingestion settings, in words.
pub(super) fn toggles(d: &Dataset) -> String {
    format!(
        "Profile {}, error diagnostics {}, partial ingestion {}",
        on_off(d.profile_enabled),
        on_off(d.error_diagnostics),
        d.partial_ingestion_percent
            .map_or("off".to_string(), |p| format!("{p}%"))
    )
}

/// "on" or "off".
pub(super) fn on_off(b: bool) -> &'static str {
    if b {
        "on"
    } else {
        "off"
    }
}

/// The title of a dataset's XDM schema.
pub(super) fn schema_title(d: &Dataset) -> String {
    d.schema()
        .ok()
        .and_then(|s| s.title().map(str::to_string))
        .unwrap_or_else(|| "(untitled schema)".into())
}

/// Dataset detail: an existing dataset, or a new one's name, description, schema and toggles
/// (created only when the review is confirmed).
pub(super) fn step_dataset<R: BufRead, W: Write>(
    p: &mut Prompter<R, W>,
    cat: &Catalog,
    resource: Resource,
    tenant: &str,
) -> Result<DatasetChoice> {
    let mut existing = cat.list_datasets().map_err(cat_err)?;
    if existing.is_empty() {
        p.say("  No dataset yet: a new one is created.")?;
    } else {
        for (i, d) in existing.iter().enumerate() {
            let line = format!("  {}) {}  schema: {}", i + 1, d.name, schema_title(d));
            p.say(format!("{line}  ({})", toggles(d)))?;
        }
        let names: Vec<String> = existing.iter().map(|d| d.name.clone()).collect();
        let choice = p.ask("Dataset (number or name, or `new`)", Some("new"), |a| {
            if a.eq_ignore_ascii_case("new") {
                return Ok(None);
            }
            pick(&names, a).map(Some).ok_or_else(|| {
                format!(
                    "no dataset {a:?}: pick 1–{}, a listed name, or new",
                    names.len()
                )
            })
        })?;
        if let Some(i) = choice {
            return Ok(DatasetChoice::Existing(existing.swap_remove(i)));
        }
    }
    let taken = |n: &str| cat.dataset(n).is_ok();
    let default = (!taken(resource.path())).then(|| resource.path().to_string());
    let name = p.ask("Output dataset name", default.as_deref(), |a| {
        check_label(a)?;
        match taken(a) {
            true => Err(format!(
                "a dataset named {a:?} already exists: choose another name"
            )),
            false => Ok(a.to_string()),
        }
    })?;
    let description = p.optional("Dataset description")?;
    let builtin = format!("built-in sql/{resource}.xdm.json");
    let (schema_json, schema) = p.ask("XDM schema file", Some(&builtin), |a| {
        let text = if a == builtin {
            stripe_xdm::defaults::xdm_schema_json(resource).to_string()
        } else {
            std::fs::read_to_string(a).map_err(|e| format!("cannot read {a}: {e}"))?
        };
        let text = substitute_tenant(&text, tenant);
        let schema = XdmSchema::from_json_str(&text)
            .map_err(|e| format!("{a} is not an XDM schema: {e}"))?;
        Ok((text, schema))
    })?;
    p.say(format!(
        "  schema: {}",
        schema.title().unwrap_or("(untitled schema)")
    ))?;
    let primaries = schema.identities().iter().filter(|i| i.primary).count();
    let one_primary = primaries == 1 && schema.primary_identity().is_some();
    let profile = p.yes_no_checked("Profile dataset", false, |yes| match yes {
        true if !one_primary => Err(format!(
            "Profile needs exactly one primary identity in the schema; it has {primaries}"
        )),
        _ => Ok(()),
    })?;
    let error_diagnostics = p.yes_no("Error diagnostics", false)?;
    let partial = p.yes_no("Partial ingestion", false)?;
    let partial_ingestion_percent = if partial {
        let default = DEFAULT_PARTIAL_INGESTION_PERCENT.to_string();
        Some(p.ask("Error threshold in percent", Some(&default), |a| {
            match a.trim_end_matches('%').trim().parse::<f64>() {
                Ok(v) if v > 0.0 && v <= 100.0 => Ok(v),
                _ => Err(format!(
                    "{a:?}: the threshold is a percentage above 0 and at most 100"
                )),
            }
        })?)
    } else {
        None
    };
    if partial && !error_diagnostics {
        p.say("  (partial ingestion turns error diagnostics on)")?;
    }
    Ok(DatasetChoice::New(Box::new(NewDataset {
        name,
        description,
        schema_json,
        profile_enabled: profile,
        error_diagnostics: error_diagnostics || partial,
        partial_ingestion_percent,
    })))
}

/// A dataset or dataflow name the catalog accepts (answers come trimmed).
pub(super) fn check_label(a: &str) -> Check<()> {
    match a.chars().count() {
        0 => Err("a name is needed".into()),
        n if n > 256 => Err("a name has at most 256 characters".into()),
        _ => Ok(()),
    }
}

/// A webhook the alert sender accepts, or what is wrong with it.
pub(super) fn check_webhook(a: &str) -> Check<()> {
    let targets = stripe_xdm::alert::AlertTargets {
        webhook: Some(a.to_string()),
        command: None,
    };
    targets.validate().map_err(|e| e.to_string())
}

/// Alerts from "1, 3", "run-start,failure", "all" or "" (none).
pub(super) fn parse_alerts(a: &str) -> Check<Vec<AlertArg>> {
    let mut out = Vec::new();
    for token in a.split([',', ' ']).filter(|t| !t.is_empty()) {
        let t = token.to_ascii_lowercase().replace('_', "-");
        let t = t.strip_prefix("run-").unwrap_or(&t);
        let chosen: &[AlertArg] = match t {
            "1" | "start" => &[AlertArg::RunStart],
            "2" | "success" => &[AlertArg::RunSuccess],
            "3" | "failure" => &[AlertArg::RunFailure],
            "all" => &[AlertArg::RunStart, AlertArg::RunSuccess, AlertArg::RunFailure],
            "none" => &[],
            _ => {
                return Err(format!(
                    "{token:?} is not an alert: use 1–3, run-start, run-success, run-failure, all or none"
                ))
            }
        };
        for c in chosen {
            if !out.contains(c) {
                out.push(*c);
            }
        }
    }
    Ok(out)
}

/// The interval rule of a frequency, as the schedule rules name it.
fn interval_rule(f: Frequency) -> String {
    format!("{f} interval ≥ {}", f.min_interval().unwrap_or(1))
}

/// An interval answer checked against the frequency's rule.
pub(super) fn check_interval(f: Frequency, a: &str) -> Check<u32> {
    let n: u32 = a
        .parse()
        .map_err(|_| format!("{a:?} is not a whole number (rule: {})", interval_rule(f)))?;
    Schedule::every(n, f, 0)
        .validate_rules()
        .map(|_| n)
        .map_err(|e| e.to_string())
}

/// Scheduling: frequency, interval, start time and backfill, each unless given as a flag.
pub(super) fn step_schedule<R: BufRead, W: Write>(
    p: &mut Prompter<R, W>,
    x: &mut DataflowCreateArgs,
    now: i64,
) -> Result<()> {
    // `--frequency` defaults to `once`, so only another value counts as given.
    let given: Frequency = match x.frequency.trim() {
        "" => Frequency::Once,
        f => f
            .parse()
            .map_err(|e| CliError::usage(format!("--frequency: {e}")))?,
    };
    let frequency = if given != Frequency::Once {
        given
    } else {
        let q = "Frequency (once, minute, hour, day, week)";
        p.ask(q, Some("once"), |a| {
            a.parse().map_err(|e: ScheduleError| e.to_string())
        })?
    };
    x.frequency = frequency.to_string();
    if frequency != Frequency::Once && x.interval.is_none() {
        let min = frequency.min_interval().unwrap_or(1).to_string();
        let q = format!(
            "Interval, {frequency}s between runs ({})",
            interval_rule(frequency)
        );
        x.interval = Some(p.ask(&q, Some(&min), |a| check_interval(frequency, a))?);
    }
    if x.start_time.is_none() {
        let q = "Start time, UTC (unix seconds, RFC 3339 or YYYY-MM-DD)";
        x.start_time = p.ask(q, Some("now"), |a| {
            if a.eq_ignore_ascii_case("now") {
                return Ok(None);
            }
            let t = super::super::commands::parse_time("start time", a).map_err(|e| e.message)?;
            if t < now - START_TIME_GRACE_SECS {
                let e = ScheduleError::StartTimeInPast { start_time: t, now };
                return Err(e.to_string());
            }
            Ok(Some(a.to_string()))
        })?;
    }
    if frequency != Frequency::Once && !x.no_backfill {
        x.no_backfill = !p.yes_no("Backfill: the first run fetches all history", true)?;
    }
    Ok(())
}

/// The chosen alerts, in words.
pub(super) fn alert_names(list: &[AlertArg]) -> String {
    let names: Vec<&str> = list
        .iter()
        .map(|a| match a {
            AlertArg::RunStart => "run start",
            AlertArg::RunSuccess => "run success",
            AlertArg::RunFailure => "run failure",
        })
        .collect();
    if names.is_empty() {
        "none".into()
    } else {
        names.join(", ")
    }
}
