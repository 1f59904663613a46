//! User-agent functions (§2.5 "User agent"). Data Prep uses a full user-agent analyser (its
//! device classes are Yauaa's); this is a compact heuristic covering the common browsers
//! (Chrome, Firefox, Safari, Edge, Opera, Internet Explorer, Samsung Internet), operating systems
//! (iOS, Android, Windows, Mac OS X, Chrome OS, Linux) and robots. As in Yauaa, what is not
//! recognised is `Unknown` (names, device class) or `??` (versions); a null input gives null.

use arrow::array::ArrayRef;
use datafusion::common::Result;
use regex::Regex;

use super::{strings, utf8, Args, Def};

pub(crate) fn defs() -> Vec<Def> {
    vec![
        Def::new("ua_os_name", "ua_os_name(USER_AGENT)", "Operating system name (\"iOS\")", (1, 1), utf8, os_name),
        Def::new("ua_os_version_major", "ua_os_version_major(USER_AGENT)", "OS name and major version (\"iOS 5\")", (1, 1), utf8, os_version_major),
        Def::new("ua_os_version", "ua_os_version(USER_AGENT)", "OS version (\"5.1.1\")", (1, 1), utf8, os_version),
        Def::new("ua_os_name_version", "ua_os_name_version(USER_AGENT)", "OS name and version (\"iOS 5.1.1\")", (1, 1), utf8, os_name_version),
        Def::new("ua_agent_version", "ua_agent_version(USER_AGENT)", "Browser version (\"5.1\")", (1, 1), utf8, agent_version),
        Def::new("ua_agent_version_major", "ua_agent_version_major(USER_AGENT)", "Browser name and major version (\"Safari 5\")", (1, 1), utf8, agent_version_major),
        Def::new("ua_agent_name", "ua_agent_name(USER_AGENT)", "Browser name (\"Safari\")", (1, 1), utf8, agent_name),
        Def::new("ua_device_class", "ua_device_class(USER_AGENT)", "Device class: Desktop, Phone, Tablet, Robot, Unknown (heuristic subset of Data Prep's list)", (1, 1), utf8, device_class),
    ]
}

/// What is known about a user agent.
struct Ua {
    os: String,
    os_version: String,
    agent: String,
    agent_version: String,
    class: &'static str,
}

fn cap(re: &str, s: &str) -> Option<String> {
    Regex::new(re)
        .ok()?
        .captures(s)?
        .get(1)
        .map(|m| m.as_str().to_string())
}

fn analyse(ua: &str) -> Ua {
    let lower = ua.to_ascii_lowercase();
    let (os, os_version) =
        if let Some(v) = cap(r"(?:iPhone OS|CPU OS|iPad.*? OS) (\d+(?:_\d+)*)", ua) {
            ("iOS".to_string(), v.replace('_', "."))
        } else if let Some(v) = cap(r"Android (\d+(?:\.\d+)*)", ua) {
            ("Android".into(), v)
        } else if let Some(v) = cap(r"Windows NT (\d+\.\d+)", ua) {
            let v = match v.as_str() {
                "10.0" => "10",
                "6.3" => "8.1",
                "6.2" => "8",
                "6.1" => "7",
                "6.0" => "Vista",
                "5.1" | "5.2" => "XP",
                other => other,
            };
            ("Windows".into(), v.to_string())
        } else if let Some(v) = cap(r"Mac OS X (\d+(?:[_.]\d+)*)", ua) {
            ("Mac OS X".into(), v.replace('_', "."))
        } else if ua.contains("CrOS") {
            (
                "Chrome OS".into(),
                cap(r"CrOS \S+ (\d+(?:\.\d+)*)", ua).unwrap_or_else(|| "??".into()),
            )
        } else if ua.contains("Linux") {
            ("Linux".into(), "??".into())
        } else {
            ("Unknown".into(), "??".into())
        };
    let robot = ["bot", "spider", "crawl", "slurp"]
        .iter()
        .any(|w| lower.contains(w));
    let agents: [(&str, &str); 8] = [
        ("Edge", r"Edg(?:e|A|iOS)?/(\d+(?:\.\d+)*)"),
        ("Opera", r"OPR/(\d+(?:\.\d+)*)"),
        ("Samsung Internet", r"SamsungBrowser/(\d+(?:\.\d+)*)"),
        ("Firefox", r"(?:Firefox|FxiOS)/(\d+(?:\.\d+)*)"),
        ("Chrome", r"(?:Chrome|CriOS)/(\d+(?:\.\d+)*)"),
        ("Safari", r"Version/(\d+(?:\.\d+)*).*Safari/"),
        ("Internet Explorer", r"MSIE (\d+(?:\.\d+)*)"),
        ("Internet Explorer", r"Trident/.*rv:(\d+(?:\.\d+)*)"),
    ];
    let (agent, agent_version) = agents
        .iter()
        .find_map(|(name, re)| cap(re, ua).map(|v| (name.to_string(), v)))
        .or_else(|| {
            robot
                .then(|| cap(r"([A-Za-z][\w-]*(?:bot|spider|crawler))/(?:\d)", ua))
                .flatten()
                .map(|n| {
                    (
                        n.clone(),
                        cap(&format!(r"{}/(\d+(?:\.\d+)*)", regex::escape(&n)), ua)
                            .unwrap_or_else(|| "??".into()),
                    )
                })
        })
        .unwrap_or_else(|| ("Unknown".into(), "??".into()));
    let class = if robot {
        "Robot"
    } else if ua.contains("iPad")
        || lower.contains("tablet")
        || (os == "Android" && !ua.contains("Mobile"))
    {
        "Tablet"
    } else if ua.contains("iPhone") || ua.contains("iPod") || ua.contains("Mobile") {
        "Phone"
    } else if matches!(os.as_str(), "Windows" | "Mac OS X" | "Chrome OS" | "Linux") {
        "Desktop"
    } else {
        "Unknown"
    };
    Ua {
        os,
        os_version,
        agent,
        agent_version,
        class,
    }
}

fn major(v: &str) -> &str {
    v.split('.').next().unwrap_or(v)
}

fn with(a: &Args, f: impl Fn(Ua) -> String) -> Result<ArrayRef> {
    strings(a.n, |r| Some(f(analyse(a.str(0, r)?))))
}

fn os_name(a: &Args) -> Result<ArrayRef> {
    with(a, |u| u.os)
}
fn os_version_major(a: &Args) -> Result<ArrayRef> {
    with(a, |u| format!("{} {}", u.os, major(&u.os_version)))
}
fn os_version(a: &Args) -> Result<ArrayRef> {
    with(a, |u| u.os_version)
}
fn os_name_version(a: &Args) -> Result<ArrayRef> {
    with(a, |u| format!("{} {}", u.os, u.os_version))
}
fn agent_version(a: &Args) -> Result<ArrayRef> {
    with(a, |u| u.agent_version)
}
fn agent_version_major(a: &Args) -> Result<ArrayRef> {
    with(a, |u| format!("{} {}", u.agent, major(&u.agent_version)))
}
fn agent_name(a: &Args) -> Result<ArrayRef> {
    with(a, |u| u.agent)
}
fn device_class(a: &Args) -> Result<ArrayRef> {
    with(a, |u| u.class.to_string())
}
