//! Coordination objects on a cluster of real processes: the `oxidask` binary as the
//! scheduler, this test binary as the workers (`... worker ADDRESS`) and as a second client
//! process (`OXIDASK_COORD_CHILD=ADDRESS`), the test process as the client.
//!
//! Runs without libtest (`harness = false`): `main` first gives the worker and child
//! processes their entry points.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use oxidask::distributed::{
    coord_error, get_client, Client, CoordError, Lock, Queue, Semaphore, Stored, Variable,
};

const CHILD_ENV: &str = "OXIDASK_COORD_CHILD";
const LONG: Option<Duration> = Some(Duration::from_secs(60));

// ---- operations the workers run --------------------------------------------------------

#[oxidask::task]
fn inc(x: i64) -> i64 {
    x + 1
}

/// Puts `0..n` on queue `name` from inside a task.
#[oxidask::task]
fn produce(name: String, n: i64) -> Result<i64, String> {
    let client = get_client().map_err(|e| e.to_string())?;
    let q = Queue::new(name, &client, 2).map_err(|e| e.to_string())?;
    for i in 0..n {
        q.put(&i, LONG).map_err(|e| e.to_string())?;
    }
    Ok(n)
}

/// Takes `n` items from queue `name` and sums them.
#[oxidask::task]
fn consume(name: String, n: i64) -> Result<i64, String> {
    let client = get_client().map_err(|e| e.to_string())?;
    let q = Queue::new(name, &client, 2).map_err(|e| e.to_string())?;
    let mut total = 0;
    for _ in 0..n {
        let v: i64 = q
            .get(LONG)
            .and_then(Stored::into_value)
            .map_err(|e| e.to_string())?;
        total += v;
    }
    Ok(total)
}

/// Adds one to the counter in variable `name`, under lock `name`.
#[oxidask::task]
fn locked_increment(name: String, _i: i64) -> Result<i64, String> {
    let client = get_client().map_err(|e| e.to_string())?;
    let lock = Lock::new(name.clone(), &client);
    let var = Variable::new(name, &client);
    if !lock.acquire(LONG).map_err(|e| e.to_string())? {
        return Err("lock not acquired in a minute".into());
    }
    let v: i64 = var
        .get(LONG)
        .and_then(Stored::into_value)
        .map_err(|e| e.to_string())?;
    std::thread::sleep(Duration::from_millis(2)); // widen the read-modify-write window
    var.set(&(v + 1)).map_err(|e| e.to_string())?;
    lock.release().map_err(|e| e.to_string())?;
    Ok(v)
}

// ---- processes -----------------------------------------------------------------------------

struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts a process and returns it with a channel of its stderr lines.
fn spawn(mut cmd: Command) -> (Proc, mpsc::Receiver<String>) {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("spawn");
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if std::env::var_os("OXIDASK_TEST_VERBOSE").is_some() {
                eprintln!("    | {line}");
            }
            let _ = tx.send(line);
        }
    });
    (Proc(child), rx)
}

fn wait_for(rx: &mpsc::Receiver<String>, needle: &str) -> String {
    let mut seen = Vec::new();
    loop {
        match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(l) if l.contains(needle) => return l,
            Ok(l) => seen.push(l),
            Err(e) => panic!("no `{needle}` ({e}) in {seen:?}"),
        }
    }
}

struct Cluster {
    _procs: Vec<Proc>,
    address: String,
}

fn cluster(workers: usize) -> Cluster {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_oxidask"));
    cmd.args(["scheduler", "--port", "0"]);
    let (scheduler, rx) = spawn(cmd);
    let line = wait_for(&rx, "listening at");
    let address = line.rsplit(' ').next().unwrap().to_owned();
    std::thread::spawn(move || for _ in rx {});
    let mut procs = vec![scheduler];
    for i in 0..workers {
        let mut cmd = Command::new(std::env::current_exe().unwrap());
        cmd.args([
            "worker",
            &address,
            "--name",
            &format!("w{i}"),
            "--nthreads",
            "1",
        ]);
        let (p, rx) = spawn(cmd);
        wait_for(&rx, "connected to the scheduler");
        std::thread::spawn(move || for _ in rx {});
        procs.push(p);
    }
    Cluster {
        _procs: procs,
        address,
    }
}

/// The second client process: takes lock `L` and a lease of semaphore `S`, says so, and
/// waits to be killed.
fn child(address: &str) {
    let client = Client::connect(address).expect("child connects");
    let lock = Lock::new("L", &client);
    assert!(lock.acquire(LONG).unwrap());
    let sem = Semaphore::new(1, "S", &client).unwrap();
    assert!(sem.acquire(LONG).unwrap());
    eprintln!("child holds the lock and the lease");
    std::thread::sleep(Duration::from_secs(600));
}

// ---- tests ---------------------------------------------------------------------------------

fn tasks_coordinate_through_a_queue_a_lock_and_a_variable() {
    let c = cluster(2);
    let client = Client::connect(&c.address).unwrap();
    // A producer and a consumer on different workers, through a queue of 2 (the producer
    // waits for room).
    let p = client.submit(&produce("jobs".to_string(), 50i64)).unwrap();
    let s = client.submit(&consume("jobs".to_string(), 50i64)).unwrap();
    assert_eq!(s.result().unwrap(), (0..50).sum::<i64>());
    assert_eq!(p.result().unwrap(), 50);
    // Read-modify-write of a variable by 12 tasks, serialized by a lock.
    let var = Variable::new("counter", &client);
    var.set(&0i64).unwrap();
    let futures = client
        .map(0..12i64, |i| locked_increment("counter".to_string(), i))
        .unwrap();
    let mut seen = client.gather(&futures).unwrap();
    seen.sort();
    assert_eq!(
        seen,
        (0..12).collect::<Vec<i64>>(),
        "each saw a distinct count"
    );
    assert_eq!(var.get::<i64>(None).unwrap().into_value().unwrap(), 12);
    // A future in a variable outlives the future that stored it, for another client.
    let f = client.submit(&inc(41i64)).unwrap();
    let v = Variable::new("answer", &client);
    v.set_future(&f).unwrap();
    drop(f);
    let other = Client::connect(&c.address).unwrap();
    match Variable::new("answer", &other).get::<i64>(None).unwrap() {
        Stored::Future(g) => assert_eq!(g.result().unwrap(), 42),
        Stored::Value(_) => panic!("a future was stored"),
    }
    // Timeouts are a distinct error, and the wrong type is named.
    let e = Variable::new("never", &other)
        .get::<i64>(Some(Duration::from_millis(200)))
        .unwrap_err();
    assert!(
        matches!(coord_error(&e), Some(CoordError::Timeout { .. })),
        "{e}"
    );
    let e = Variable::new("counter", &other)
        .get::<String>(None)
        .unwrap_err();
    assert!(e.to_string().contains("i64"), "{e}");
    // A published dataset outlives the client that published it.
    let f = client.submit(&inc(1i64)).unwrap();
    client.publish_dataset_future("two", &f).unwrap();
    let e = client.publish_dataset_future("two", &f).unwrap_err();
    assert!(
        matches!(coord_error(&e), Some(CoordError::AlreadyExists(_))),
        "{e}"
    );
    drop(f);
    drop(client);
    assert_eq!(other.list_datasets().unwrap(), vec!["two".to_string()]);
    assert_eq!(
        other
            .get_dataset::<i64>("two")
            .unwrap()
            .into_value()
            .unwrap(),
        2
    );
    other.unpublish_dataset("two").unwrap();
    other
        .log_event("progress", &"half way".to_string())
        .unwrap();
    let events = other.get_events::<String>("progress").unwrap();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].1, "half way");
}

fn a_lock_and_a_lease_return_when_their_holder_process_dies() {
    let c = cluster(0);
    let client = Client::connect(&c.address).unwrap();
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.env(CHILD_ENV, &c.address);
    let (mut holder, rx) = spawn(cmd);
    wait_for(&rx, "child holds the lock and the lease");
    let lock = Lock::new("L", &client);
    let sem = Semaphore::new(1, "S", &client).unwrap();
    assert!(!lock.try_acquire().unwrap(), "the child holds it");
    assert!(!sem.acquire(Some(Duration::from_millis(100))).unwrap());
    assert_eq!(sem.get_value().unwrap(), 1);
    let e = lock.release().unwrap_err();
    assert!(
        matches!(coord_error(&e), Some(CoordError::NotHeld(_))),
        "{e}"
    );
    holder.0.kill().unwrap(); // SIGKILL: no goodbye
    let _ = holder.0.wait();
    assert!(lock.acquire(LONG).unwrap(), "released when its holder died");
    assert!(
        sem.acquire(LONG).unwrap(),
        "the lease expired with its holder"
    );
    lock.release().unwrap();
    sem.release().unwrap();
    assert!(!lock.locked().unwrap());
}

// ---- harness -------------------------------------------------------------------------------

type Test = (&'static str, fn());

const TESTS: &[Test] = &[
    (
        "tasks_coordinate_through_a_queue_a_lock_and_a_variable",
        tasks_coordinate_through_a_queue_a_lock_and_a_variable,
    ),
    (
        "a_lock_and_a_lease_return_when_their_holder_process_dies",
        a_lock_and_a_lease_return_when_their_holder_process_dies,
    ),
];

fn main() {
    oxidask::distributed::run_if_worker();
    if let Ok(address) = std::env::var(CHILD_ENV) {
        child(&address);
        return;
    }
    let filter: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let mut failed = Vec::new();
    for (name, f) in TESTS {
        if !filter.is_empty() && !filter.iter().any(|x| name.contains(x.as_str())) {
            continue;
        }
        let (tx, rx) = mpsc::channel();
        let f = *f;
        std::thread::spawn(move || {
            let _ = tx.send(std::panic::catch_unwind(f).is_ok());
        });
        let ok = rx.recv_timeout(Duration::from_secs(180)).unwrap_or(false);
        println!("test {name} ... {}", if ok { "ok" } else { "FAILED" });
        if !ok {
            failed.push(*name);
        }
    }
    if !failed.is_empty() {
        println!("test result: FAILED: {failed:?}");
        std::process::exit(1);
    }
    println!("test result: ok");
}
