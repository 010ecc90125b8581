//! Actors (the book's chapter 7) on a cluster of processes: a counter and a bank account that
//! live on one worker each, called from the client and from tasks running on other workers,
//! one call at a time, in order, without locks.
//!
//! `cargo run --release -p oxidask-examples --example actor_counter`

use std::time::Instant;

use oxidask::distributed::{
    get_client, register_actor, Actor, ActorHandle, ActorRef, LocalCluster,
};

/// A counter: adds what it is sent and answers the new total.
struct Counter {
    n: i64,
}

impl Actor for Counter {
    const NAME: &'static str = "examples/counter";
    type Init = i64;
    type Msg = i64;
    type Reply = i64;

    fn new(start: i64) -> Result<Self, String> {
        Ok(Counter { n: start })
    }

    fn handle(&mut self, by: i64) -> Result<i64, String> {
        self.n += by;
        Ok(self.n)
    }
}
register_actor!(Counter);

/// The book's bank account: a positive amount deposits, a negative one withdraws, zero asks
/// the balance; withdrawing more than the balance is refused.
struct BankAccount {
    balance: f64,
}

impl Actor for BankAccount {
    const NAME: &'static str = "examples/bank-account";
    type Init = f64;
    type Msg = f64;
    type Reply = f64;

    fn new(balance: f64) -> Result<Self, String> {
        Ok(BankAccount { balance })
    }

    fn handle(&mut self, amount: f64) -> Result<f64, String> {
        if -amount > self.balance {
            return Err("Please deposit more money first.".into());
        }
        self.balance += amount;
        Ok(self.balance)
    }
}
register_actor!(BankAccount);

/// An actor type this program forgot to register: submitting it fails with an error saying
/// so (the task that would build it runs on a worker that does not know it).
struct Unregistered;

impl Actor for Unregistered {
    const NAME: &'static str = "examples/unregistered";
    type Init = ();
    type Msg = ();
    type Reply = ();

    fn new(_: ()) -> Result<Self, String> {
        Ok(Unregistered)
    }

    fn handle(&mut self, _: ()) -> Result<(), String> {
        Ok(())
    }
}

/// A task that calls the counter from the worker it runs on (directly, not through the
/// scheduler) and returns the total it saw.
#[oxidask::task]
fn bump(counter: ActorRef, by: i64) -> Result<i64, String> {
    let client = get_client().map_err(|e| e.to_string())?;
    let counter = ActorHandle::<Counter>::attach(&client, counter)?;
    counter.call(&by).result().map_err(|e| e.to_string())
}

fn main() -> Result<(), oxidask::Error> {
    // `actor_counter worker ADDRESS ...` runs this program as a worker.
    oxidask::distributed::run_if_worker();

    let cluster = LocalCluster::builder()
        .workers(2)
        .threads_per_worker(2)
        .processes(true)
        .start()?;
    let client = cluster.client()?;

    let counter = client.submit_actor::<Counter>(0)?;
    println!("counter on worker {}", counter.actor_ref().address);
    // Calls return at once; they run one at a time, in the order they were made.
    let calls: Vec<_> = (0..100).map(|_| counter.call(&1)).collect();
    let seen: Vec<i64> = calls
        .iter()
        .map(|c| c.result().expect("a counter call"))
        .collect();
    assert_eq!(seen, (1..=100).collect::<Vec<_>>());
    println!(
        "100 calls from the client, answered in order: last total {}",
        seen[99]
    );

    // Tasks on both workers call the same counter.
    let futures = client.map(1..=20i64, |i| bump(counter.actor_ref().clone(), i))?;
    let totals = client.gather(&futures)?;
    let total = counter.call(&0).result().expect("reading the counter");
    assert_eq!(total, 100 + (1..=20).sum::<i64>());
    assert_eq!(totals.iter().max(), Some(&total));
    println!("20 tasks called it too: total {total}");

    let account = client.submit_actor::<BankAccount>(42.0)?;
    println!("balance {}", account.call(&0.0).result().expect("balance"));
    match account.call(&-100.0).result() {
        Err(e) => println!("withdrawing 100: refused ({e})"),
        Ok(b) => panic!("withdrawal allowed, balance {b}"),
    }
    println!(
        "deposit 100: balance {}",
        account.call(&100.0).result().expect("deposit")
    );
    println!(
        "withdraw 100: balance {}",
        account.call(&-100.0).result().expect("withdraw")
    );

    // The actor lives while a handle from submit_actor does; a handle made from its
    // ActorRef (as tasks make) does not keep it.
    let detached = ActorHandle::<Counter>::attach(&client, counter.actor_ref().clone())
        .expect("a counter's ref");
    match client.submit_actor::<Unregistered>(()) {
        Err(e) => {
            assert!(e.to_string().contains("register_actor!"), "{e}");
            println!("an unregistered actor type: refused ({e})");
        }
        Ok(_) => panic!("an unregistered actor type was built"),
    }

    let n = 2_000;
    let mut lat: Vec<f64> = (0..n)
        .map(|_| {
            let t = Instant::now();
            counter.call(&1).result().expect("a counter call");
            t.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    lat.sort_by(f64::total_cmp);
    println!(
        "{n} sequential calls: p50 {:.3} ms, p99 {:.3} ms",
        lat[n / 2],
        lat[n * 99 / 100]
    );

    drop(counter);
    let deadline = Instant::now() + std::time::Duration::from_secs(60);
    let freed = loop {
        match detached.call(&1).result() {
            Err(e) => break e.to_string(),
            Ok(_) if Instant::now() < deadline => {
                std::thread::sleep(std::time::Duration::from_millis(20))
            }
            Ok(_) => panic!("the counter was not freed after its handle was dropped"),
        }
    };
    assert!(freed.contains("was released"), "{freed}");
    println!("counter dropped: the worker freed it");
    Ok(())
}
