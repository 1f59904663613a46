//! The `dataflows create` wizard: Platform's source workflow (account → select data → dataflow
//! detail → mapping → scheduling → review) as prompts on stderr, answered on stdin. It fills the
//! same [`DataflowCreateArgs`] the flags fill; fields given as flags are kept and not asked.

use std::io::{BufRead, IsTerminal, Write};

use stripe_xdm::catalog::{Catalog, Dataset, NewDataset};
use stripe_xdm::schedule::Frequency;
use stripe_xdm::xdm::XdmSchema;
use stripe_xdm::Resource;

use super::dataflows::{default_name, DataflowCreateArgs};
use super::flows::cat_err;
use super::CliError;

type Result<T> = std::result::Result<T, CliError>;
type Check<T> = std::result::Result<T, String>;

mod steps;
use steps::{
    alert_names, check_label, check_webhook, on_off, parse_alerts, schema_title, step_account,
    step_dataset, step_mapping, step_resource, step_schedule, toggles,
};

/// Invalid answers to one question before the wizard gives up.
const MAX_TRIES: usize = 5;

/// True when the wizard can talk to a person: stdin and stderr are both terminals.
pub(super) fn is_terminal() -> bool {
    std::io::stdin().is_terminal() && std::io::stderr().is_terminal()
}

/// Walks through Platform's dataflow steps with prompts on stderr and answers from stdin, and
/// returns `x` filled in. A new dataset chosen on the way is created once the review is
/// confirmed; "n" at the review cancels with a usage error and creates nothing.
pub(super) fn create(cat: &mut Catalog, x: DataflowCreateArgs) -> Result<DataflowCreateArgs> {
    let stdin = std::io::stdin();
    // Piped answers are echoed after their prompt so the transcript reads as a dialogue.
    let echo = !stdin.is_terminal();
    let mut p = Prompter::new(stdin.lock(), std::io::stderr(), echo);
    run(&mut p, cat, x, chrono::Utc::now().timestamp())
}

/// Questions and answers over any reader and writer (stdin and stderr in the binary).
pub(super) struct Prompter<R, W> {
    input: R,
    out: W,
    echo: bool,
}

impl<R: BufRead, W: Write> Prompter<R, W> {
    /// A prompter reading `input` and writing to `out`; `echo` repeats each answer on `out`.
    pub(super) fn new(input: R, out: W, echo: bool) -> Self {
        Prompter { input, out, echo }
    }

    /// Prints a line.
    fn say(&mut self, text: impl std::fmt::Display) -> Result<()> {
        writeln!(self.out, "{text}").map_err(io_err)
    }

    /// Asks once; an empty answer gives `default` (or "").
    fn read(&mut self, question: &str, default: Option<&str>) -> Result<String> {
        match default {
            Some(d) => write!(self.out, "{question} [{d}]: "),
            None => write!(self.out, "{question}: "),
        }
        .and_then(|_| self.out.flush())
        .map_err(io_err)?;
        let mut line = String::new();
        let n = self.input.read_line(&mut line).map_err(io_err)?;
        if n == 0 {
            let _ = writeln!(self.out);
            return Err(CliError::usage("the wizard needs answers on stdin"));
        }
        let answer = match (line.trim(), default) {
            ("", Some(d)) => d.to_string(),
            (a, _) => a.to_string(),
        };
        if self.echo {
            self.say(&answer)?;
        }
        Ok(answer)
    }

    /// Asks until `check` accepts the answer, saying what is wrong each time (at most
    /// [`MAX_TRIES`] times).
    fn ask<T>(
        &mut self,
        question: &str,
        default: Option<&str>,
        mut check: impl FnMut(&str) -> Check<T>,
    ) -> Result<T> {
        for _ in 0..MAX_TRIES {
            let answer = self.read(question, default)?;
            match check(&answer) {
                Ok(v) => return Ok(v),
                Err(why) => self.say(format!("  ✗ {why}"))?,
            }
        }
        Err(CliError::usage(format!(
            "{MAX_TRIES} invalid answers to \"{question}\": giving up"
        )))
    }

    /// A yes/no question; `check` may refuse an answer.
    fn yes_no_checked(
        &mut self,
        question: &str,
        default: bool,
        check: impl Fn(bool) -> Check<()>,
    ) -> Result<bool> {
        let q = format!("{question} [{}]", if default { "Y/n" } else { "y/N" });
        self.ask(&q, None, |a| {
            let yes = yes_no(a, default)?;
            check(yes).map(|_| yes)
        })
    }

    fn yes_no(&mut self, question: &str, default: bool) -> Result<bool> {
        self.yes_no_checked(question, default, |_| Ok(()))
    }

    /// An optional free-text answer (empty = none).
    fn optional(&mut self, question: &str) -> Result<Option<String>> {
        let a = self.read(&format!("{question} (optional)"), None)?;
        Ok((!a.is_empty()).then_some(a))
    }
}

fn io_err(e: std::io::Error) -> CliError {
    CliError::usage(format!("the wizard cannot use the terminal: {e}"))
}

fn yes_no(a: &str, default: bool) -> Check<bool> {
    match a.to_ascii_lowercase().as_str() {
        "" => Ok(default),
        "y" | "yes" => Ok(true),
        "n" | "no" => Ok(false),
        _ => Err(format!("{a:?}: answer y or n")),
    }
}

/// The index of the answer in a list: its number (1-based) or its name.
fn pick(names: &[String], answer: &str) -> Option<usize> {
    if let Ok(n) = answer.parse::<usize>() {
        return (1..=names.len()).contains(&n).then(|| n - 1);
    }
    names
        .iter()
        .position(|s| s == answer)
        .or_else(|| names.iter().position(|s| s.eq_ignore_ascii_case(answer)))
}

/// How the user chose the dataset.
enum DatasetChoice {
    /// Given with --dataset.
    Given(String),
    /// One from the catalog.
    Existing(Dataset),
    /// To create when the review is confirmed.
    New(Box<NewDataset>),
}

impl DatasetChoice {
    fn name(&self) -> &str {
        match self {
            DatasetChoice::Given(n) => n,
            DatasetChoice::Existing(d) => &d.name,
            DatasetChoice::New(d) => &d.name,
        }
    }
}

/// The whole wizard (see [`create`]); `now` is unix seconds.
fn run<R: BufRead, W: Write>(
    p: &mut Prompter<R, W>,
    cat: &mut Catalog,
    mut x: DataflowCreateArgs,
    now: i64,
) -> Result<DataflowCreateArgs> {
    p.say("Create a dataflow: Stripe → XDM dataset (answers in [brackets] are the defaults)")?;
    p.say("\n[1/6] Connect your Stripe account")?;
    let account = match x.account.take() {
        Some(a) => a,
        None => step_account(p, cat)?,
    };
    p.say("\n[2/6] Select data")?;
    let resource = match x.resource {
        Some(r) => r,
        None => step_resource(p)?,
    };
    let columns = stripe_xdm::decode::arrow_schema(resource);
    let names: Vec<&str> = columns.fields().iter().map(|f| f.name().as_str()).collect();
    p.say(format!(
        "  {resource}: {} columns: {}{}",
        names.len(),
        names[..names.len().min(12)].join(", "),
        if names.len() > 12 { ", …" } else { "" }
    ))?;
    p.say(format!(
        "  (sample rows: stripe-xdm preview --account {account} --resource {resource})"
    ))?;
    p.say("\n[3/6] Dataset and dataflow detail")?;
    let dataset = match x.dataset.take() {
        Some(d) => DatasetChoice::Given(d),
        None => step_dataset(p, cat, resource, &x.tenant)?,
    };
    if x.name.is_none() {
        let default = default_name(resource);
        x.name = Some(p.ask("Dataflow name", Some(&default), |a| {
            check_label(a)?;
            match cat.dataflow(a) {
                Ok(_) => Err(format!("a dataflow named {a:?} already exists")),
                Err(_) => Ok(a.to_string()),
            }
        })?);
    }
    if x.description.is_none() {
        x.description = p.optional("Description")?;
    }
    if x.alert.is_empty() {
        p.say("  Alerts: 1) run start  2) run success  3) run failure")?;
        x.alert = p.ask(
            "Alerts (numbers or names, comma-separated; empty for none)",
            None,
            parse_alerts,
        )?;
    }
    let t = &mut x.targets;
    if !x.alert.is_empty() && t.alert_webhook.is_none() && t.alert_command.is_none() {
        t.alert_webhook = p.ask(
            "Alert webhook URL, receives a JSON POST (optional)",
            None,
            |a| match a {
                "" => Ok(None),
                _ => check_webhook(a).map(|_| Some(a.to_string())),
            },
        )?;
        t.alert_command = p.optional("Alert command, run with sh -c, payload on stdin")?;
    }
    p.say("\n[4/6] Map fields to XDM")?;
    if x.mapping.is_none() {
        x.mapping = step_mapping(p, cat, resource, &dataset, &x.tenant)?;
    }
    p.say("\n[5/6] Scheduling")?;
    step_schedule(p, &mut x, now)?;
    review(p, cat, &x, &account, resource, &dataset, now)?;
    if !p.yes_no("Create this dataflow?", true)? {
        return Err(CliError::usage("cancelled"));
    }
    if let DatasetChoice::New(new) = &dataset {
        let ds = cat.create_dataset(new).map_err(cat_err)?;
        p.say(format!("dataset {:?} created", ds.name))?;
    }
    x.account = Some(account);
    x.resource = Some(resource);
    x.dataset = Some(dataset.name().to_string());
    Ok(x)
}

/// Prints Platform's Review page for the answers so far.
fn review<R: BufRead, W: Write>(
    p: &mut Prompter<R, W>,
    cat: &Catalog,
    x: &DataflowCreateArgs,
    account: &str,
    resource: Resource,
    dataset: &DatasetChoice,
    now: i64,
) -> Result<()> {
    let columns = stripe_xdm::decode::arrow_schema(resource).fields().len();
    let (title, detail) = match dataset {
        DatasetChoice::Given(n) => match cat.dataset(n) {
            Ok(d) => (schema_title(&d), toggles(&d)),
            Err(e) => ("-".to_string(), e.to_string()),
        },
        DatasetChoice::Existing(d) => (schema_title(d), toggles(d)),
        DatasetChoice::New(d) => {
            let title = XdmSchema::from_json_str(&d.schema_json)
                .ok()
                .and_then(|s| s.title().map(str::to_string))
                .unwrap_or_else(|| "(untitled schema)".into());
            let partial = d
                .partial_ingestion_percent
                .map_or("off".to_string(), |p| format!("{p}%"));
            let toggles = format!(
                "new; Profile {}, error diagnostics {}, partial ingestion {partial}",
                on_off(d.profile_enabled),
                on_off(d.error_diagnostics)
            );
            (title, toggles)
        }
    };
    let mapping = x.mapping.as_ref().map_or_else(
        || format!("built-in sql/{resource}.sql"),
        |m| m.display().to_string(),
    );
    let start = match &x.start_time {
        Some(t) => super::commands::parse_time("start time", t).unwrap_or(now),
        None => now,
    };
    let once = x.frequency == Frequency::Once.as_str();
    let mut alerts = alert_names(&x.alert);
    if let Some(w) = &x.targets.alert_webhook {
        alerts += &format!(" → webhook {}", stripe_xdm::catalog::mask_url(w));
    }
    if let Some(c) = &x.targets.alert_command {
        alerts += &format!(" → command {c}");
    }
    let lines = [
        format!("\n[6/6] Review: {}", x.name.as_deref().unwrap_or("-")),
        "Connection".into(),
        "  Source type:      Stripe".into(),
        format!("  Account:          {account}"),
        format!("  Resource path:    {resource}"),
        format!("  Columns:          {columns}"),
        "Assign dataset & map fields".into(),
        format!("  Target dataset:   {} ({detail})", dataset.name()),
        format!("  Schema:           {title}"),
        format!("  Mapping:          {mapping}"),
        "Dataflow detail".into(),
        format!(
            "  Description:      {}",
            x.description.as_deref().unwrap_or("-")
        ),
        format!("  Alerts:           {alerts}"),
        "Scheduling".into(),
        format!(
            "  Active period:    from {}",
            super::flows_output::time(start)
        ),
        format!("  Frequency:        {}", x.frequency),
        format!(
            "  Interval:         {}",
            x.interval.map_or("-".to_string(), |i| i.to_string())
        ),
        format!(
            "  Backfill:         {}",
            if once {
                "-"
            } else if x.no_backfill {
                "no"
            } else {
                "yes"
            }
        ),
    ];
    for l in lines {
        p.say(l)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::dataflows::AlertArg;
    use super::steps::check_interval;
    use super::*;
    use std::io::Cursor;

    fn prompter(input: &str) -> Prompter<Cursor<Vec<u8>>, Vec<u8>> {
        Prompter::new(Cursor::new(input.as_bytes().to_vec()), Vec::new(), false)
    }

    fn said(p: &Prompter<Cursor<Vec<u8>>, Vec<u8>>) -> String {
        String::from_utf8_lossy(&p.out).into_owned()
    }

    #[test]
    fn an_empty_answer_takes_the_default_and_invalid_ones_are_re_asked() {
        let mut p = prompter("\n");
        assert_eq!(p.read("Q", Some("dflt")).unwrap(), "dflt");
        assert!(said(&p).contains("Q [dflt]: "));

        let mut p = prompter("abc\n0\n7\n");
        let n = p.ask("Number", None, |a| match a.parse::<u32>() {
            Ok(n) if n > 0 => Ok(n),
            _ => Err(format!("{a:?} is not a positive number")),
        });
        assert_eq!(n.unwrap(), 7);
        let out = said(&p);
        assert!(out.contains("\"abc\" is not a positive number"), "{out}");
        assert!(out.contains("\"0\" is not a positive number"), "{out}");
        assert_eq!(out.matches("Number: ").count(), 3);
    }

    #[test]
    fn five_invalid_answers_give_up_and_eof_names_stdin() {
        let mut p = prompter("x\nx\nx\nx\nx\n7\n");
        let e = p
            .ask("N", None, |_| Err::<u32, _>("bad".into()))
            .unwrap_err();
        assert!(e.message.contains("5 invalid answers"), "{}", e.message);
        assert_eq!(e.code, super::super::EXIT_USAGE);

        let mut p = prompter("");
        let e = p.read("Q", None).unwrap_err();
        assert_eq!(e.message, "the wizard needs answers on stdin");
    }

    #[test]
    fn yes_no_defaults_and_refusals() {
        let mut p = prompter("\nmaybe\nY\n");
        assert!(!p.yes_no("A", false).unwrap());
        assert!(p.yes_no("B", false).unwrap());
        assert!(said(&p).contains("B [y/N]: "));
        assert!(said(&p).contains("answer y or n"));
        let mut p = prompter("y\nn\n");
        let r = p.yes_no_checked("P", false, |y| {
            if y {
                Err("no identity".into())
            } else {
                Ok(())
            }
        });
        assert!(!r.unwrap());
        assert!(said(&p).contains("no identity"));
    }

    #[test]
    fn alerts_intervals_picks_and_urls_parse() {
        assert_eq!(parse_alerts("").unwrap(), vec![]);
        assert_eq!(
            parse_alerts("3, run-start,1").unwrap(),
            vec![AlertArg::RunFailure, AlertArg::RunStart]
        );
        assert_eq!(parse_alerts("all").unwrap().len(), 3);
        assert!(parse_alerts("sometimes").is_err());

        let e = check_interval(Frequency::Minute, "5").unwrap_err();
        assert!(e.contains("minute interval ≥ 15"), "{e}");
        assert!(check_interval(Frequency::Hour, "0").is_err());
        assert!(check_interval(Frequency::Day, "two")
            .unwrap_err()
            .contains("day interval ≥ 1"));
        assert_eq!(check_interval(Frequency::Minute, "15").unwrap(), 15);

        let names = vec!["main".to_string(), "Other".to_string()];
        assert_eq!(pick(&names, "2"), Some(1));
        assert_eq!(pick(&names, "other"), Some(1));
        assert_eq!(pick(&names, "3"), None);
        assert!(check_webhook("https://hooks.example/x").is_ok());
        assert!(check_webhook("hooks.example").is_err());
    }

    /// What clap gives with no flags.
    fn args() -> DataflowCreateArgs {
        DataflowCreateArgs {
            frequency: "once".into(),
            tenant: stripe_xdm::map::DEFAULT_TENANT.into(),
            ..DataflowCreateArgs::default()
        }
    }

    fn catalog_with_account() -> (tempfile::TempDir, Catalog) {
        let home = tempfile::tempdir().unwrap();
        let mut cat = Catalog::open(home.path()).unwrap();
        let key = stripe_xdm::Secret::new("sk_test_wizardwizard4242");
        cat.add_account("main", None, &key).unwrap();
        (home, cat)
    }

    #[test]
    fn the_wizard_fills_every_step_and_creates_the_new_dataset_on_confirm() {
        let (_home, mut cat) = catalog_with_account();
        let now = 1_900_000_000;
        // account (default: the only one), resource, dataset name, description, schema,
        // Profile, diagnostics, partial + threshold, flow name, description, alerts, webhook,
        // command, mapping, frequency, interval (5 re-asked), start, backfill, confirm.
        let answers = "\ncustomers\n\n\n\ny\nn\ny\n\n\nNightly\n1,3\nhttps://h.example/t\n\n\nminute\n5\n20\n\nn\n\n";
        let mut p = prompter(answers);
        let x = run(&mut p, &mut cat, args(), now).unwrap();
        let out = said(&p);
        assert!(out.contains("minute interval ≥ 15"), "{out}");
        assert_eq!(x.account.as_deref(), Some("main"));
        assert_eq!(x.resource, Some(Resource::Customers));
        assert_eq!(x.dataset.as_deref(), Some("customers"));
        assert_eq!(x.name.as_deref(), Some("Stripe customers"));
        assert_eq!(x.description.as_deref(), Some("Nightly"));
        assert_eq!(x.alert, vec![AlertArg::RunStart, AlertArg::RunFailure]);
        assert_eq!(
            x.targets.alert_webhook.as_deref(),
            Some("https://h.example/t")
        );
        assert_eq!((x.frequency.as_str(), x.interval), ("minute", Some(20)));
        assert!(x.no_backfill && x.start_time.is_none() && x.mapping.is_none());
        assert!(out.contains("Assign dataset & map fields") && out.contains("Scheduling"));
        let ds = cat.dataset("customers").unwrap();
        assert!(ds.profile_enabled && ds.error_diagnostics);
        assert_eq!(ds.partial_ingestion_percent, Some(5.0));
    }

    #[test]
    fn flags_are_kept_and_cancel_creates_nothing() {
        let (_home, mut cat) = catalog_with_account();
        let x = DataflowCreateArgs {
            account: Some("main".into()),
            resource: Some(Resource::Charges),
            name: Some("flow".into()),
            description: Some("d".into()),
            frequency: "hour".into(),
            interval: Some(2),
            ..args()
        };
        // dataset: new with defaults (name, description, schema, 3 toggles), alerts none,
        // mapping default, start now, backfill default, then "n".
        let mut p = prompter(&("\n".repeat(10) + "n\n"));
        let e = run(&mut p, &mut cat, x, 1_900_000_000).unwrap_err();
        assert_eq!(e.message, "cancelled");
        assert!(cat.dataset("charges").is_err(), "nothing created");
        let out = said(&p);
        assert!(
            !out.contains("Account (") && !out.contains("Frequency ("),
            "{out}"
        );
        assert!(!out.contains("Interval,"), "{out}");
    }

    #[test]
    fn a_mapping_that_does_not_fit_the_dataset_is_re_asked() {
        let (_home, mut cat) = catalog_with_account();
        let charges = stripe_xdm::defaults::xdm_schema_json(Resource::Charges);
        cat.create_dataset(&NewDataset {
            name: "ch".into(),
            description: None,
            schema_json: stripe_xdm::map::substitute_tenant(charges, "tenant"),
            profile_enabled: false,
            error_diagnostics: false,
            partial_ingestion_percent: None,
        })
        .unwrap();
        let x = DataflowCreateArgs {
            account: Some("main".into()),
            resource: Some(Resource::Customers),
            dataset: Some("ch".into()),
            name: Some("f".into()),
            description: Some("d".into()),
            ..args()
        };
        // No alerts, then the built-in customers mapping, which never fits charges.
        let mut p = prompter(&"\n".repeat(6));
        let e = run(&mut p, &mut cat, x, 1_900_000_000).unwrap_err();
        assert!(e.message.contains("5 invalid answers"), "{}", e.message);
        let out = said(&p);
        assert!(out.contains("does not fit the dataset's schema"), "{out}");
    }

    #[test]
    fn without_an_account_the_wizard_says_how_to_add_one() {
        let home = tempfile::tempdir().unwrap();
        let mut cat = Catalog::open(home.path()).unwrap();
        let mut p = prompter("");
        let e = run(&mut p, &mut cat, args(), 0).unwrap_err();
        assert!(
            e.message.contains("stripe-xdm accounts add"),
            "{}",
            e.message
        );
        assert!(said(&p).contains("--api-key-env"));
    }
}
