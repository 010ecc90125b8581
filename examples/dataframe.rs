//! DataFrames, the NYC-taxi walk-through: read a year of monthly Parquet files, look at them,
//! filter, aggregate, join the zone table, index by pickup time, and write results — each step
//! a lazy plan that runs in parallel, partition by partition.
//!
//! The data is a small synthetic stand-in for the 2019 yellow-taxi files (same columns), made
//! here so the example runs anywhere. `cargo run --release -p oxidask-examples --example dataframe`

use oxidask::dataframe::polars::prelude::{self as pl, NamedFrom};
use oxidask::dataframe::{self as dd, agg, col, lit, DataType, How};
use oxidask::Collection;

/// A month of synthetic trips.
fn month(m: u32, rows: usize) -> pl::DataFrame {
    let mut state = 0x2019_0000u64 + m as u64;
    let mut next = move || {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (state >> 33) as f64 / (1u64 << 31) as f64
    };
    let start = chrono_ms(2019, m);
    let mut vendor = Vec::new();
    let mut pickup = Vec::new();
    let mut passengers = Vec::new();
    let mut distance = Vec::new();
    let mut zone = Vec::new();
    let mut total = Vec::new();
    for i in 0..rows {
        vendor.push(if next() < 0.36 { 1i64 } else { 2 });
        pickup.push(start + (i as i64 * 2_419_200_000 / rows as i64));
        passengers.push(if next() < 0.01 {
            None
        } else {
            Some((next() * 6.0) as i64 as f64)
        });
        let d = (next() * 4.0).exp() / 4.0;
        distance.push((d * 100.0).round() / 100.0);
        zone.push(1 + (next() * next() * 265.0) as i64);
        total.push(((3.0 + 2.6 * d) * 100.0).round() / 100.0);
    }
    pl::DataFrame::new_infer_height(vec![
        pl::Column::new("VendorID".into(), vendor),
        pl::Series::new("tpep_pickup_datetime".into(), pickup)
            .cast(&DataType::Datetime(pl::TimeUnit::Milliseconds, None))
            .unwrap()
            .into(),
        pl::Column::new("passenger_count".into(), passengers),
        pl::Column::new("trip_distance".into(), distance),
        pl::Column::new("PULocationID".into(), zone),
        pl::Column::new("total_amount".into(), total),
    ])
    .unwrap()
}

/// Milliseconds at the start of a month of 2019.
fn chrono_ms(year: i64, month: u32) -> i64 {
    let days_before: [i64; 12] = [0, 31, 59, 90, 120, 151, 181, 212, 243, 273, 304, 334];
    let days = (year - 1970) * 365 + 12 + days_before[month as usize - 1]; // 12 leap days 1970–2018
    days * 86_400_000
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::env::temp_dir().join(format!("oxidask-taxi-{}", std::process::id()));
    let files = dir.join("trips");
    std::fs::create_dir_all(&files)?;
    for m in 1..=12 {
        let mut df = month(m, 20_000);
        let f = std::fs::File::create(files.join(format!("yellow_tripdata_2019-{m:02}.parquet")))?;
        pl::ParquetWriter::new(f).finish(&mut df)?;
    }

    // Read: a partition per file; nothing is loaded yet.
    let trips = dd::read_parquet(files.to_str().unwrap());
    println!("{trips}");
    println!("first rows:\n{}", trips.head(3)?);

    // How many passengers ride together? One column is read from each file.
    let counts = trips.column("passenger_count").value_counts().compute()?;
    println!("passenger counts:\n{counts}");

    // Long trips, counted in parallel.
    let long = trips.filter(col("trip_distance").gt(lit(10.0)));
    println!("trips over 10 miles: {}", long.len()?);

    // Fare statistics per vendor: several aggregations in one pass.
    let per_vendor = trips
        .groupby(["VendorID"])
        .agg([
            agg::mean("total_amount").alias("mean_total"),
            agg::max("total_amount").alias("max_total"),
            agg::std("trip_distance").alias("std_distance"),
            agg::size("total_amount").alias("trips"),
        ])
        .compute()?;
    println!("per vendor:\n{per_vendor}");
    assert_eq!(per_vendor.height(), 2);

    // Join the (small) zone table: broadcast to every partition, then count by borough. The
    // trips are counted per PULocationID before the join (their Parquet statistics promise
    // few locations), so each partition joins a few hundred rows, not every trip.
    let boroughs = ["Manhattan", "Brooklyn", "Queens", "Bronx", "Staten Island"];
    let zones = pl::df!(
        "LocationID" => (1..=265i64).collect::<Vec<_>>(),
        "Borough" => (0..265).map(|i| boroughs[i % 5]).collect::<Vec<_>>(),
    )?;
    let by_borough = trips
        .columns_subset(["PULocationID"])
        .merge(
            &dd::from_polars(zones, 1),
            &["PULocationID"],
            &["LocationID"],
            How::Inner,
        )
        .column("Borough")
        .value_counts()
        .compute()?;
    println!("pickups by borough:\n{by_borough}");

    // Busy hours: the datetime accessor.
    let hours = trips
        .column("tpep_pickup_datetime")
        .dt()
        .hour()
        .alias("hour");
    let by_hour = hours.value_counts().compute()?;
    println!("busiest hour: {:?}", by_hour.get_row(0)?.0);

    // Index January by pickup time: rows sorted across partitions, divisions known.
    let january = dd::read_parquet(
        files
            .join("yellow_tripdata_2019-01.parquet")
            .to_str()
            .unwrap(),
    )
    .repartition(4)
    .set_index("tpep_pickup_datetime", None);
    println!(
        "January indexed by pickup time: {} partitions, divisions known: {}",
        january.npartitions(),
        january.known_divisions()
    );

    // Summaries, and results written back out (a file per partition, all or nothing).
    println!(
        "describe:\n{}",
        trips
            .select([col("trip_distance"), col("total_amount")])
            .describe()?
    );
    let written = long.to_parquet(dir.join("long-trips").to_str().unwrap())?;
    println!("wrote {written} long trips");
    std::fs::remove_dir_all(&dir)?;
    println!("done");
    Ok(())
}
