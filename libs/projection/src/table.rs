//! The table every figure is returned in: dimensions with ordered categories, one
//! value per combination of categories (row-major, the last dimension fastest), what
//! each measure counts, and the facts a reader needs to reproduce it.
//!
//! The last dimension is always `ContentsCode`, whose categories are the measures
//! (for example numerator, denominator and rate). Disclosure control and the JSON-stat
//! and CSV renderers work on this type only.

/// One category of a dimension.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Category {
    /// Code as published (e.g. "0301", "067-079", "2").
    pub code: String,
    /// Label.
    pub label: String,
}

/// A dimension, SSB style (`Region`, `Tjeneste`, `Alder`, `Kjonn`, `Tid`, `ContentsCode`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Dimension {
    /// Dimension id.
    pub id: String,
    /// Label.
    pub label: String,
    /// Categories in publication order.
    pub categories: Vec<Category>,
    /// Index of the category that is the margin (total) of the others, if any.
    pub total: Option<usize>,
    /// Sets of categories whose values add up to the margin (for person counts):
    /// e.g. for `Alder` the detailed bands and the KOSTRA bands, for `Kjonn` male,
    /// female and unknown. Disclosure control protects each such relation.
    pub partitions: Vec<Vec<usize>>,
}

/// What a measure is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Quantity {
    /// A number of distinct persons (disclosure-controlled).
    Persons,
    /// A population count used as a denominator (disclosure-controlled).
    Population,
    /// A sum of hours per week.
    Hours,
    /// A sum of days.
    Days,
    /// A mean (e.g. hours per person).
    Mean,
    /// A share between 0 and 1.
    Share,
    /// A rate per 1000.
    Per1000,
    /// A percentile of days (median, 90th), suppressed when based on 1-4 values.
    Percentile,
}

/// One measure (a category of `ContentsCode`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Measure {
    /// What it is.
    pub quantity: Quantity,
    /// For derived measures (rates, means, percentiles): the measure (index in
    /// `ContentsCode`) counting the persons or values it is based on.
    pub numerator: Option<usize>,
    /// For rates and means: the measure holding the denominator.
    pub denominator: Option<usize>,
}

/// Status of a published cell.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    /// The exact value is shown.
    Shown,
    /// Suppressed by the primary rule (1-4 persons).
    SuppressedPrimary,
    /// Suppressed by the secondary rule (derivable from margins).
    SuppressedSecondary,
}

/// Reproducibility facts of a table (SPEC 7).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TableMeta {
    /// Log position reflected: next offset per partition.
    pub log_position: Vec<(u32, u64)>,
    /// Version of the figure definitions.
    pub definition_version: u32,
    /// Population year used for denominators, if any.
    pub population_year: Option<i32>,
    /// The population year the definition asks for; differs from `population_year`
    /// when that year is not available and the nearest one was used.
    pub population_wanted: Option<i32>,
    /// Notes a reader must see with the numbers (a substituted population year, a
    /// reference date outside the data), in the table's language. Set by the
    /// publishing layer; the figures leave it empty.
    pub notes: Vec<String>,
    /// The date or period the table is about, e.g. "2024-12-31" or "2024Q3".
    pub reference: String,
    /// Exact (operator) numbers, not disclosure-controlled.
    pub exact: bool,
}

/// A statistics table.
#[derive(Clone, Debug, PartialEq)]
pub struct Table {
    /// Figure id, e.g. "T2".
    pub figure: String,
    /// Title.
    pub label: String,
    /// Dimensions; the last is `ContentsCode`.
    pub dimensions: Vec<Dimension>,
    /// One per `ContentsCode` category.
    pub measures: Vec<Measure>,
    /// Values, row-major with the last dimension fastest; `None` where undefined
    /// (e.g. a rate over a zero denominator).
    pub values: Vec<Option<f64>>,
    /// One status per value.
    pub status: Vec<Status>,
    /// Reproducibility facts.
    pub meta: TableMeta,
}

impl Table {
    /// Number of categories per dimension.
    pub fn sizes(&self) -> Vec<usize> {
        self.dimensions.iter().map(|d| d.categories.len()).collect()
    }

    /// Position in `values` of one category index per dimension.
    pub fn offset(&self, coords: &[usize]) -> usize {
        debug_assert_eq!(
            coords.len(),
            self.dimensions.len(),
            "one coordinate per dimension"
        );
        coords
            .iter()
            .zip(self.sizes())
            .fold(0, |acc, (c, size)| acc * size + c)
    }

    /// The coordinates of a position in `values`.
    pub fn coords(&self, mut offset: usize) -> Vec<usize> {
        let sizes = self.sizes();
        let mut out = vec![0; sizes.len()];
        for (i, size) in sizes.iter().enumerate().rev() {
            out[i] = offset % size.max(&1);
            offset /= size.max(&1);
        }
        out
    }

    /// Index of a dimension by id.
    pub fn dimension(&self, id: &str) -> Option<usize> {
        self.dimensions.iter().position(|d| d.id == id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dim(id: &str, n: usize) -> Dimension {
        Dimension {
            id: id.into(),
            label: id.into(),
            categories: (0..n)
                .map(|i| Category {
                    code: i.to_string(),
                    label: i.to_string(),
                })
                .collect(),
            total: None,
            partitions: Vec::new(),
        }
    }

    #[test]
    fn offsets_and_coords_agree() {
        let table = Table {
            figure: "T".into(),
            label: "t".into(),
            dimensions: vec![dim("A", 2), dim("B", 3), dim("ContentsCode", 4)],
            measures: vec![
                Measure {
                    quantity: Quantity::Persons,
                    numerator: None,
                    denominator: None
                };
                4
            ],
            values: vec![None; 24],
            status: vec![Status::Shown; 24],
            meta: TableMeta {
                log_position: vec![],
                definition_version: 1,
                population_year: None,
                population_wanted: None,
                notes: Vec::new(),
                reference: String::new(),
                exact: true,
            },
        };
        for offset in 0..24 {
            assert_eq!(table.offset(&table.coords(offset)), offset);
        }
        assert_eq!(table.offset(&[1, 0, 0]), 12);
        assert_eq!(table.offset(&[0, 1, 3]), 7);
        assert_eq!(table.dimension("B"), Some(1));
    }
}
