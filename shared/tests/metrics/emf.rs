//! Reads EMF lines as CloudWatch Logs would: each line a JSON document valid against the
//! specification's schema, every dimension and metric it names a member of the document, then
//! the datapoints it makes, by namespace, metric and dimension values.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use serde_json::Value;

const SCHEMA: &str = include_str!("emf.schema.json");

/// One series: a metric in a namespace, with its dimension values.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Series {
    pub namespace: String,
    pub metric: String,
    pub dimensions: BTreeMap<String, String>,
}

/// What a run of lines makes: every value of every series, and each metric's unit.
#[derive(Debug, Default)]
pub struct Datapoints {
    pub values: BTreeMap<Series, Vec<f64>>,
    pub units: BTreeMap<String, String>,
    /// The dimension sets as declared, in order, by metric name.
    pub dimension_sets: BTreeMap<String, Vec<String>>,
}

impl Datapoints {
    /// The sum of every value of `metric` whose dimensions include all of `dimensions`.
    pub fn sum(&self, metric: &str, dimensions: &[(&str, &str)]) -> f64 {
        self.matching(metric, dimensions).flatten().sum()
    }

    /// How many values `metric` got, where its dimensions include all of `dimensions`.
    pub fn count(&self, metric: &str, dimensions: &[(&str, &str)]) -> usize {
        self.matching(metric, dimensions).map(<[f64]>::len).sum()
    }

    fn matching<'a>(
        &'a self,
        metric: &'a str,
        dimensions: &'a [(&str, &str)],
    ) -> impl Iterator<Item = &'a [f64]> + 'a {
        self.values
            .iter()
            .filter(move |(series, _)| {
                series.metric == metric
                    && dimensions.iter().all(|(name, value)| {
                        series.dimensions.get(*name).map(String::as_str) == Some(*value)
                    })
            })
            .map(|(_, values)| values.as_slice())
    }

    /// Every series, as `Metric{Dimension=value,...}` = sum: for failure messages.
    pub fn summary(&self) -> String {
        self.values
            .iter()
            .map(|(series, values)| {
                let dimensions: Vec<String> = series
                    .dimensions
                    .iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect();
                format!(
                    "{}{{{}}}={}",
                    series.metric,
                    dimensions.join(","),
                    values.iter().sum::<f64>()
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    }
}

fn validator() -> &'static jsonschema::Validator {
    static VALIDATOR: OnceLock<jsonschema::Validator> = OnceLock::new();
    VALIDATOR.get_or_init(|| {
        let schema: Value = serde_json::from_str(SCHEMA).expect("the schema is JSON");
        jsonschema::validator_for(&schema).expect("the schema builds")
    })
}

/// Reads `lines` (what a function writes to stdout), failing on any line CloudWatch would not
/// turn into metrics.
pub fn read(lines: &str) -> Datapoints {
    let mut datapoints = Datapoints::default();
    for line in lines.lines().filter(|line| !line.trim().is_empty()) {
        let document: Value = serde_json::from_str(line)
            .unwrap_or_else(|err| panic!("not one JSON document per line ({err}): {line}"));
        let errors: Vec<String> = validator()
            .iter_errors(&document)
            .map(|error| format!("{error} at {}", error.instance_path()))
            .collect();
        assert!(errors.is_empty(), "not EMF: {errors:?}: {line}");
        for directive in document["_aws"]["CloudWatchMetrics"]
            .as_array()
            .expect("schema")
        {
            let namespace = directive["Namespace"].as_str().expect("schema");
            for set in directive["Dimensions"].as_array().expect("schema") {
                let names: Vec<String> = set
                    .as_array()
                    .expect("schema")
                    .iter()
                    .map(|name| name.as_str().expect("schema").to_owned())
                    .collect();
                let dimensions: BTreeMap<String, String> = names
                    .iter()
                    .map(|name| {
                        let value = document[name].as_str().unwrap_or_else(|| {
                            panic!(
                                "dimension {name} is not a string member of the document: {line}"
                            )
                        });
                        (name.clone(), value.to_owned())
                    })
                    .collect();
                for metric in directive["Metrics"].as_array().expect("schema") {
                    let name = metric["Name"].as_str().expect("schema").to_owned();
                    let values = match &document[&name] {
                        Value::Number(n) => vec![n.as_f64().expect("a number")],
                        Value::Array(values) => {
                            assert!(values.len() <= 100, "over 100 values for {name}: {line}");
                            values
                                .iter()
                                .map(|v| {
                                    v.as_f64()
                                        .unwrap_or_else(|| panic!("{name}: not a number: {line}"))
                                })
                                .collect()
                        }
                        other => panic!("metric {name} has no numeric member ({other}): {line}"),
                    };
                    if let Some(unit) = metric["Unit"].as_str() {
                        datapoints.units.insert(name.clone(), unit.to_owned());
                    }
                    datapoints
                        .dimension_sets
                        .insert(name.clone(), names.clone());
                    datapoints
                        .values
                        .entry(Series {
                            namespace: namespace.to_owned(),
                            metric: name,
                            dimensions: dimensions.clone(),
                        })
                        .or_default()
                        .extend(values);
                }
            }
        }
    }
    datapoints
}
