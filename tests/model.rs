//! The regression model end to end: a Kaggle "Cryptocurrency Price History" candle file
//! streamed through `tickflow run` gives, at every version, the least-squares fit of the
//! rows seen so far (checked against exact big-integer least squares), and the model
//! settings are validated with messages that name the setting.

mod common;

use rand::{Rng, SeedableRng};
use tickflow_oracle::least_squares::reference;

use common::*;

/// One day, ms.
const DAY_MS: i128 = 86_400_000;

/// A decimal as the Kaggle files write it (binary-float noise included) at 8 fractional
/// digits, rounded half away from zero: the test's own reading, not the engine's.
fn units(text: &str) -> i128 {
    let (negative, digits) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let (int, frac) = digits.split_once('.').unwrap_or((digits, ""));
    let mut kept: String = frac.chars().take(8).collect();
    while kept.len() < 8 {
        kept.push('0');
    }
    let mut value = int.parse::<i128>().expect("integer part") * 100_000_000
        + kept.parse::<i128>().expect("fraction");
    if frac.len() > 8 && frac.as_bytes()[8] >= b'5' {
        value += 1;
    }
    if negative {
        -value
    } else {
        value
    }
}

/// `rows` daily candles of a Bitcoin-like random walk in the Kaggle format, starting on
/// 2013-04-29 like the real `coin_Bitcoin.csv`; the values are printed as shortest `f64`
/// text, so most carry more than 8 fractional digits, as the real files do. Returns the
/// file's text and each row's (open, high, low, volume) and close in units of 1e-8.
fn kaggle_file(rows: usize, seed: u64) -> (String, Vec<(Vec<i128>, i128)>) {
    let mut rng = rand_pcg::Pcg64::seed_from_u64(seed);
    let mut text = String::from("SNo,Name,Symbol,Date,High,Low,Open,Close,Volume,Marketcap\n");
    let mut samples = Vec::new();
    let mut close: f64 = 144.5;
    // 2013-04-29 in days since the epoch.
    let first_day = 15_824;
    for i in 0..rows {
        let open = close * (1.0 + rng.random_range(-0.01..0.01));
        close = open * (1.0 + rng.random_range(-0.06..0.06));
        let high = open.max(close) * (1.0 + rng.random_range(0.0..0.04));
        let low = open.min(close) * (1.0 - rng.random_range(0.0..0.04));
        // Early rows of the real file have no volume.
        let volume: f64 = if i < 20 {
            0.0
        } else {
            rng.random_range(1e8..6e10)
        };
        let day = first_day + i as i64;
        let (y, m, d) = civil_from_days(day);
        let fields = [
            format!("{high}"),
            format!("{low}"),
            format!("{open}"),
            format!("{close}"),
            format!("{volume}"),
        ];
        text.push_str(&format!(
            "{},Bitcoin,BTC,{y:04}-{m:02}-{d:02} 23:59:59,{},{},{},{},{},{}\n",
            i + 1,
            fields[0],
            fields[1],
            fields[2],
            fields[3],
            fields[4],
            close * 1.9e7
        ));
        let [high, low, open, close, volume] = fields.map(|f| units(&f));
        samples.push((vec![open, high, low, volume], close));
    }
    (text, samples)
}

/// Year, month, day of a day number since 1970-01-01 (H. Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

fn real(text: &str) -> f64 {
    text.parse()
        .unwrap_or_else(|_| panic!("not a number: {text}"))
}

#[test]
fn a_kaggle_candle_file_streams_to_the_batch_fit_of_its_rows_at_every_version() {
    let dir = tempfile::tempdir().expect("tempdir");
    let dir = dir.path();
    let days = 1_200;
    let (text, samples) = kaggle_file(days, 7);
    std::fs::write(dir.join("coin_Bitcoin.csv"), text).expect("write");
    // Default settings: the model learns from the file's own (daily) candles, all history.
    tickflow(
        dir,
        &[
            "run",
            "--source",
            "file:coin_Bitcoin.csv",
            "--sink",
            "sqlite:k.db",
            "-w",
            "2",
        ],
    );
    let db = path(dir, "k.db");
    let models = rows(
        &db,
        "SELECT version, n, features, coefficients, intercept, condition, status, window_ms \
         FROM models ORDER BY version",
    );
    // One version per candle, each holding every row so far.
    assert_eq!(models.len(), days);
    let start = 1_367_193_600_000_i128; // 2013-04-29T00:00:00Z
    let mut checked = 0;
    for (k, model) in models.iter().enumerate() {
        assert_eq!(
            model[0],
            (start + k as i128 * DAY_MS).to_string(),
            "version {k}"
        );
        assert_eq!(model[1], (k + 1).to_string(), "n of version {k}");
        assert_eq!(model[2], r#"["open","high","low","volume"]"#);
        assert_eq!(model[7], DAY_MS.to_string());
        // The first 20 rows have no volume: that column is constant, the fit singular.
        if k < 20 {
            assert_ne!(model[6], "ok", "version {k}: {model:?}");
            continue;
        }
        if !(k % 97 == 0 || k == days - 1) {
            continue;
        }
        assert_eq!(model[6], "ok", "version {k}: {model:?}");
        let coefficients: Vec<f64> = serde_json::from_str(&model[3]).expect("json array");
        let intercept = real(&model[4]);
        let condition = real(&model[5]);
        let exact = reference(&samples[..=k]).expect("regular");
        // The samples are in units of 1e-8: so is the exact intercept.
        let exact_intercept = exact[0] / 1e8;
        let tolerance = 1e-9_f64.max(condition * 1e-13);
        for (j, (&got, &want)) in coefficients.iter().zip(&exact[1..]).enumerate() {
            let error = (got - want).abs() / want.abs().max(f64::MIN_POSITIVE);
            assert!(
                error <= tolerance,
                "version {k}, coefficient {j}: {got} vs exact {want} (relative error {error:e}, condition {condition:e})"
            );
        }
        // The intercept is the difference of price-sized terms: measured against prices.
        let level = samples[..=k].iter().map(|s| s.1 as f64).sum::<f64>() / 1e8 / (k + 1) as f64;
        let error = (intercept - exact_intercept).abs() / level.max(exact_intercept.abs());
        assert!(
            error <= tolerance,
            "version {k}, intercept: {intercept} vs exact {exact_intercept} (error {error:e})"
        );
        checked += 1;
    }
    assert!(checked >= 12, "only {checked} versions compared");
    // Every row was predicted once, before it was learnt: by the version of the day before
    // (when that one was solved), as β·x of that version's stored coefficients.
    let predictions = rows(
        &db,
        "SELECT p.start_ms, p.model_version, p.predicted, p.actual, m.coefficients, m.intercept \
         FROM predictions p LEFT JOIN models m ON m.symbol = p.symbol AND m.version = p.model_version \
         ORDER BY p.start_ms",
    );
    assert_eq!(predictions.len(), days);
    for (k, p) in predictions.iter().enumerate().skip(30) {
        assert_eq!(
            p[1],
            (start + (k as i128 - 1) * DAY_MS).to_string(),
            "row {k}"
        );
        let coefficients: Vec<f64> = serde_json::from_str(&p[4]).expect("json");
        let x = &samples[k].0;
        let predicted = real(&p[5])
            + coefficients
                .iter()
                .zip(x)
                .map(|(b, &v)| b * v as f64 / 1e8)
                .sum::<f64>();
        let got = real(&p[2]);
        assert!(
            (got - predicted).abs() <= 1e-9 * predicted.abs(),
            "row {k}: {got} vs β·x {predicted}"
        );
        assert_eq!(units(&p[3]), samples[k].1, "row {k}: actual");
    }
}

#[test]
fn model_settings_are_checked_before_the_run_with_the_setting_named() {
    let dir = tempfile::tempdir().expect("tempdir");
    let dir = dir.path();
    for (args, named) in [
        (vec!["--model-features", "open,hgh"], "hgh"),
        (vec!["--model-features", "open,open"], "twice"),
        (vec!["--model-window", "3"], "model window 3"),
        (vec!["--model-window", "ten"], "--model-window"),
        (vec!["--model-candles", "5m"], "no candles of that window"),
        (vec!["--model-candles", "soon"], "--model-candles"),
        (vec!["--model-ridge=-1"], "ridge"),
    ] {
        let mut all = vec!["run", "--events", "10", "--rate", "0", "--sink", "none"];
        all.extend(&args);
        let out = tickflow_unchecked(dir, &all);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} accepted");
        assert!(stderr.contains(named), "{args:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
    }
    let out = tickflow_unchecked(
        dir,
        &[
            "run", "--config", "bad.toml", "--events", "10", "--sink", "none",
        ],
    );
    assert!(!out.status.success());
    std::fs::write(
        dir.join("m.toml"),
        "[model]\nfeatures = [\"open\", \"spread\"]\n",
    )
    .expect("write");
    let out = tickflow_unchecked(
        dir,
        &[
            "run", "--config", "m.toml", "--events", "10", "--sink", "none",
        ],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("spread"), "{stderr}");
}
