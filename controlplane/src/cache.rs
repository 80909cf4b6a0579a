//! Build caches that cannot be poisoned (the control plane's binaries, and `cargo xtask`'s
//! Camunda application): an entry is keyed by the hash of everything that went
//! into it (sources, tool versions), built in a temporary folder and renamed into place only
//! once complete, with its key and the sha256 of every file stored beside it. An entry whose
//! key or files do not match is damaged: it is said, removed and rebuilt. "Cached" in the
//! output means nothing was rebuilt.

use std::fmt::Write as _;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{anyhow, bail, Context, Result};
use sha2::{Digest, Sha256};

const KEY_FILE: &str = "KEY";
const MANIFEST_FILE: &str = "MANIFEST";
/// Build folders are named so; only a complete build is renamed to its key.
const BUILDING_PREFIX: &str = ".build-";

/// Build folders of builds running now: an interrupted run removes them on its way out.
static BUILDING: std::sync::Mutex<Vec<PathBuf>> = std::sync::Mutex::new(Vec::new());

fn building() -> std::sync::MutexGuard<'static, Vec<PathBuf>> {
    BUILDING.lock().unwrap_or_else(|p| p.into_inner())
}

/// Removes the folders of builds still running (for Ctrl-C/SIGTERM handlers, after they have
/// stopped the build's processes): an interrupted build leaves nothing in the cache.
pub fn abandon_unfinished_builds() {
    for dir in std::mem::take(&mut *building()) {
        let _ = std::fs::remove_dir_all(dir);
    }
}

/// `$XDG_CACHE_HOME/camunda-conformance` or `~/.cache/camunda-conformance`.
pub fn root() -> Result<PathBuf> {
    let base = match std::env::var_os("XDG_CACHE_HOME").filter(|v| !v.is_empty()) {
        Some(dir) => PathBuf::from(dir),
        None => {
            let home = std::env::var_os("HOME")
                .ok_or_else(|| anyhow!("neither XDG_CACHE_HOME nor HOME is set"))?;
            PathBuf::from(home).join(".cache")
        }
    };
    Ok(base.join("camunda-conformance"))
}

/// One kind of cached build: `<cache root>/<name>/<key>/` holding `files` (relative paths).
pub struct Cache<'a> {
    pub name: &'a str,
    /// Every input, as text: hashed into the key and stored beside the files.
    pub key_text: String,
    pub files: &'a [&'a str],
}

impl Cache<'_> {
    fn dir(&self) -> Result<PathBuf> {
        let key = hex(&Sha256::digest(self.key_text.as_bytes()));
        Ok(root()?.join(self.name).join(&key[..16]))
    }

    /// The entry's folder, built by `build` (into the folder it is given) when it is missing or
    /// damaged. `build` must leave every file of `files` there.
    pub fn ensure(&self, build: impl FnOnce(&Path) -> Result<()>) -> Result<PathBuf> {
        let dir = self.dir()?;
        let checked = Instant::now();
        if dir.exists() {
            match self.damage(&dir) {
                None => {
                    eprintln!(
                        "  {}: cached, nothing rebuilt ({}, verified in {:.1}s)",
                        self.name,
                        dir.display(),
                        checked.elapsed().as_secs_f64()
                    );
                    return Ok(dir);
                }
                Some(why) => {
                    eprintln!(
                        "  {}: the cache entry {} is damaged ({why}): rebuilding",
                        self.name,
                        dir.display()
                    );
                    std::fs::remove_dir_all(&dir)
                        .with_context(|| format!("removing the damaged entry {}", dir.display()))?;
                }
            }
        }
        let parent = dir.parent().context("a cache entry has a parent")?;
        std::fs::create_dir_all(parent)
            .with_context(|| format!("creating {}", parent.display()))?;
        remove_unfinished(parent);
        let building = tempfile::Builder::new()
            .prefix(BUILDING_PREFIX)
            .tempdir_in(parent)
            .with_context(|| format!("creating a build folder in {}", parent.display()))?
            .keep();
        self::building().push(building.clone());
        let build_started = Instant::now();
        let outcome = build(&building)
            .and_then(|()| record_build(&building, build_started.elapsed()))
            .and_then(|()| self.seal(&building));
        if outcome.is_ok() {
            // A failed build stays listed: when an interrupt made it fail, the handler
            // removes it on its way out.
            self::building().retain(|d| d != &building);
        }
        if let Err(err) = outcome {
            // Kept for its logs; the next build removes it.
            return Err(err.context(format!(
                "{}: the unfinished build is left in {}",
                self.name,
                building.display()
            )));
        }
        if let Err(err) = std::fs::rename(&building, &dir) {
            let _ = std::fs::remove_dir_all(&building);
            // Another run finished the same build first: use it if it is whole.
            if self.damage(&dir).is_none() {
                return Ok(dir);
            }
            return Err(err).with_context(|| format!("moving the build into {}", dir.display()));
        }
        Ok(dir)
    }

    /// Writes the key and the manifest (sha256 of every file) into a finished build.
    fn seal(&self, dir: &Path) -> Result<()> {
        let mut manifest = String::new();
        for file in self.files {
            let path = dir.join(file);
            if path.metadata().map(|m| m.len()).unwrap_or(0) == 0 {
                bail!("the build left no (or an empty) {file}");
            }
            let _ = writeln!(manifest, "{}  {file}", sha256_file(&path)?);
        }
        write(&dir.join(MANIFEST_FILE), &manifest)?;
        // The key last: an entry with a key was sealed whole.
        write(&dir.join(KEY_FILE), &self.key_text)
    }

    /// Why an entry cannot be used, or `None` when it is complete and intact.
    pub fn damage(&self, dir: &Path) -> Option<String> {
        match std::fs::read_to_string(dir.join(KEY_FILE)) {
            Ok(stored) if stored == self.key_text => {}
            Ok(_) => return Some(format!("{KEY_FILE} does not match the inputs")),
            Err(err) => return Some(format!("no readable {KEY_FILE}: {err}")),
        }
        let manifest = match std::fs::read_to_string(dir.join(MANIFEST_FILE)) {
            Ok(text) => text,
            Err(err) => return Some(format!("no readable {MANIFEST_FILE}: {err}")),
        };
        for file in self.files {
            let Some(expected) = manifest.lines().find_map(|line| {
                let (sum, name) = line.split_once("  ")?;
                (name == *file).then_some(sum)
            }) else {
                return Some(format!("{MANIFEST_FILE} lists no {file}"));
            };
            match sha256_file(&dir.join(file)) {
                Ok(sum) if sum == expected => {}
                Ok(_) => return Some(format!("{file} differs from its recorded sha256")),
                Err(err) => return Some(format!("{err:#}")),
            }
        }
        None
    }
}

/// How long an entry took to build and when it was finished, for `cargo xtask bench e2e`.
pub const BUILD_RECORD_FILE: &str = "BUILD";

fn record_build(dir: &Path, took: std::time::Duration) -> Result<()> {
    let finished = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default();
    write(
        &dir.join(BUILD_RECORD_FILE),
        &format!("seconds {:.1}\nfinished {finished}\n", took.as_secs_f64()),
    )
}

/// An entry's recorded build: (seconds it took, unix time it finished); `None` for an entry
/// built before builds were recorded, or not an entry.
pub fn build_record(dir: &Path) -> Option<(f64, u64)> {
    let text = std::fs::read_to_string(dir.join(BUILD_RECORD_FILE)).ok()?;
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
            .map(str::trim)
    };
    Some((
        field("seconds")?.parse().ok()?,
        field("finished")?.parse().ok()?,
    ))
}

fn write(path: &Path, text: &str) -> Result<()> {
    std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))
}

/// Build folders of earlier runs that did not finish.
fn remove_unfinished(parent: &Path) {
    let Ok(entries) = std::fs::read_dir(parent) else {
        return;
    };
    for entry in entries.flatten() {
        if entry
            .file_name()
            .to_string_lossy()
            .starts_with(BUILDING_PREFIX)
        {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub fn sha256_file(path: &Path) -> Result<String> {
    let mut file =
        std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; 1 << 20];
    loop {
        let n = file
            .read(&mut buffer)
            .with_context(|| format!("reading {}", path.display()))?;
        if n == 0 {
            break;
        }
        hasher.update(&buffer[..n]);
    }
    Ok(hex(&hasher.finalize()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cache(key: &str) -> Cache<'static> {
        Cache {
            name: "unit",
            key_text: key.to_string(),
            files: &["out/a.jar"],
        }
    }

    fn build_ok(dir: &Path) -> Result<()> {
        std::fs::create_dir_all(dir.join("out"))?;
        std::fs::write(dir.join("out/a.jar"), b"PK complete")?;
        Ok(())
    }

    /// One test, since it points XDG_CACHE_HOME at its own folder.
    #[test]
    fn entries_are_keyed_sealed_verified_and_rebuilt_when_damaged() {
        let home = tempfile::tempdir().unwrap();
        std::env::set_var("XDG_CACHE_HOME", home.path());
        let mut builds = 0;
        let dir = cache("v1")
            .ensure(|d| {
                builds += 1;
                build_ok(d)
            })
            .unwrap();
        // Cached: nothing rebuilt.
        let again = cache("v1")
            .ensure(|_| panic!("must not rebuild an intact entry"))
            .unwrap();
        assert_eq!(dir, again);
        let (seconds, finished) = build_record(&dir).expect("the build is recorded");
        assert!(
            seconds >= 0.0 && finished > 1_700_000_000,
            "{seconds} {finished}"
        );
        assert_eq!(build_record(home.path()), None);
        // A truncated file (an interrupted copy) is damage: said and rebuilt.
        std::fs::write(dir.join("out/a.jar"), b"").unwrap();
        assert!(cache("v1").damage(&dir).unwrap().contains("out/a.jar"));
        cache("v1")
            .ensure(|d| {
                builds += 1;
                build_ok(d)
            })
            .unwrap();
        assert_eq!(builds, 2);
        assert_eq!(
            std::fs::read(dir.join("out/a.jar")).unwrap(),
            b"PK complete"
        );
        // Other inputs, another entry.
        assert_ne!(cache("v2").dir().unwrap(), dir);
        // A build that fails or leaves an empty file is never renamed into place.
        let failed = cache("v3").ensure(|d| {
            std::fs::create_dir_all(d.join("out"))?;
            std::fs::write(d.join("out/a.jar"), b"")?;
            Ok(())
        });
        assert!(failed.unwrap_err().to_string().contains("unfinished build"));
        assert!(!cache("v3").dir().unwrap().exists());
        std::env::remove_var("XDG_CACHE_HOME");
    }
}
