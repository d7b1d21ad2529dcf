//! Client ids and the globs over them, as a fault's `target = "client=PATTERN"` names its
//! subscribers: one definition for the proxy's faults, the link faults, the scenario checker
//! and the analysis that judges them.

/// A glob over client ids: `*` matches any run of characters, `?` exactly one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Glob {
    pattern: String,
}

impl Glob {
    pub fn new(pattern: &str) -> Self {
        Glob {
            pattern: pattern.to_string(),
        }
    }

    /// The pattern as written.
    pub fn pattern(&self) -> &str {
        &self.pattern
    }

    pub fn matches(&self, text: &str) -> bool {
        let pattern: Vec<char> = self.pattern.chars().collect();
        let text: Vec<char> = text.chars().collect();
        // Iterative matcher with one backtrack point: linear for the patterns people write.
        let (mut p, mut t) = (0, 0);
        let mut star: Option<(usize, usize)> = None;
        while t < text.len() {
            if p < pattern.len() && (pattern[p] == '?' || pattern[p] == text[t]) {
                p += 1;
                t += 1;
            } else if p < pattern.len() && pattern[p] == '*' {
                star = Some((p, t));
                p += 1;
            } else if let Some((sp, st)) = star {
                p = sp + 1;
                t = st + 1;
                star = Some((sp, st + 1));
            } else {
                return false;
            }
        }
        pattern[p..].iter().all(|&c| c == '*')
    }
}

/// Client ids for a fleet: `{n}` in `pattern` becomes 1..=count; without `{n}`, `-n` is appended
/// (a single subscriber keeps the pattern as its id).
pub fn fleet_ids(pattern: &str, count: u32) -> Vec<String> {
    (1..=count)
        .map(|n| {
            if pattern.contains("{n}") {
                pattern.replace("{n}", &n.to_string())
            } else if count == 1 {
                pattern.to_string()
            } else {
                format!("{pattern}-{n}")
            }
        })
        .collect()
}

/// The client glob a fault's spec text targets (`…,target=client=PATTERN,…`, the spelling both
/// modes print), or None when it targets everyone. How the analysis learns, from a run's
/// events, which subscribers a fault was played on.
pub fn spec_target(spec: &str) -> Option<Glob> {
    let (_, rest) = spec.split_once(':')?;
    rest.split(',')
        .find_map(|pair| pair.strip_prefix("target=client="))
        .map(Glob::new)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_match_client_ids() {
        let g = Glob::new("sensor-*");
        assert!(g.matches("sensor-1") && g.matches("sensor-") && !g.matches("sense-1"));
        assert!(Glob::new("a?c").matches("abc") && !Glob::new("a?c").matches("ac"));
        assert!(Glob::new("*").matches(""));
    }

    #[test]
    fn a_spec_names_its_target() {
        assert_eq!(
            spec_target("cut:at=5s,for=2s,target=client=paho*,every=10s"),
            Some(Glob::new("paho*"))
        );
        assert_eq!(spec_target("cut:at=5s,for=2s"), None);
        assert_eq!(spec_target("cut:at=5s,target=new"), None);
    }
}
