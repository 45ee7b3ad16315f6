//! A tiny DNS responder on a UDP socket, for resolver tests inside a private network namespace:
//! answers A and AAAA questions for the names it is given, each after its own delay (or never),
//! and NXDOMAIN for every other name. It records the questions it was asked.

use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The longest a responder runs, whatever happens to its owner.
const LIFETIME: Duration = Duration::from_secs(120);

/// One name the responder knows.
#[derive(Debug, Clone)]
pub struct Record {
    pub name: String,
    pub v4: Option<Ipv4Addr>,
    pub v6: Option<Ipv6Addr>,
    /// How long to hold each answer; `None`: never answer (a dead server, as seen by the client).
    pub answer_after: Option<Duration>,
}

/// The responder's thread; stopped and joined on drop.
#[derive(Debug)]
pub struct Responder {
    questions: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Responder {
    /// Serves `records` on `addr` (bound on the caller's thread, so in the caller's namespace).
    pub fn start(addr: SocketAddr, records: Vec<Record>) -> io::Result<Responder> {
        let socket = UdpSocket::bind(addr)?;
        let questions = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (asked, stopped) = (Arc::clone(&questions), Arc::clone(&stop));
        let thread = std::thread::spawn(move || serve(socket, records, asked, stopped));
        Ok(Responder {
            questions,
            stop,
            thread: Some(thread),
        })
    }

    /// The questions asked so far, as `"name TYPE"` (`"slow.test A"`).
    pub fn questions(&self) -> Vec<String> {
        self.questions.lock().map(|q| q.clone()).unwrap_or_default()
    }
}

impl Drop for Responder {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn serve(
    socket: UdpSocket,
    records: Vec<Record>,
    questions: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
) {
    let end = Instant::now() + LIFETIME;
    let mut pending: Vec<(Instant, Vec<u8>, SocketAddr)> = Vec::new();
    let mut buf = [0u8; 1500];
    while !stop.load(Ordering::Relaxed) && Instant::now() < end {
        let now = Instant::now();
        pending.retain(|(due, reply, peer)| {
            if *due > now {
                return true;
            }
            let _ = socket.send_to(reply, peer);
            false
        });
        let wait = pending
            .iter()
            .map(|(due, _, _)| due.saturating_duration_since(now))
            .min()
            .unwrap_or(Duration::from_millis(50))
            .clamp(Duration::from_millis(1), Duration::from_millis(50));
        let _ = socket.set_read_timeout(Some(wait));
        let Ok((len, peer)) = socket.recv_from(&mut buf) else {
            continue;
        };
        let Some((name, qtype, question_end)) = parse_question(&buf[..len]) else {
            continue;
        };
        let type_name = match qtype {
            1 => "A".to_owned(),
            28 => "AAAA".to_owned(),
            other => other.to_string(),
        };
        if let Ok(mut asked) = questions.lock() {
            asked.push(format!("{name} {type_name}"));
        }
        let record = records.iter().find(|r| r.name.eq_ignore_ascii_case(&name));
        let delay = match record {
            Some(record) => match record.answer_after {
                Some(delay) => delay,
                None => continue,
            },
            None => Duration::ZERO,
        };
        let reply = reply(&buf[..question_end], qtype, record);
        pending.push((Instant::now() + delay, reply, peer));
    }
}

/// The first question's name, type, and the end of the question section.
fn parse_question(packet: &[u8]) -> Option<(String, u16, usize)> {
    if packet.len() < 12 || u16::from_be_bytes([packet[4], packet[5]]) == 0 {
        return None;
    }
    let mut labels = Vec::new();
    let mut at = 12;
    loop {
        let len = *packet.get(at)? as usize;
        at += 1;
        if len == 0 {
            break;
        }
        if len & 0xC0 != 0 {
            return None;
        }
        labels.push(String::from_utf8_lossy(packet.get(at..at + len)?).into_owned());
        at += len;
    }
    let qtype = u16::from_be_bytes([*packet.get(at)?, *packet.get(at + 1)?]);
    let end = at + 4;
    if packet.len() < end {
        return None;
    }
    Some((labels.join("."), qtype, end))
}

fn reply(query: &[u8], qtype: u16, record: Option<&Record>) -> Vec<u8> {
    let answer: Option<Vec<u8>> = match (qtype, record) {
        (1, Some(Record { v4: Some(ip), .. })) => Some(ip.octets().to_vec()),
        (28, Some(Record { v6: Some(ip), .. })) => Some(ip.octets().to_vec()),
        _ => None,
    };
    let rcode = if record.is_none() { 3 } else { 0 }; // NXDOMAIN, or NOERROR (maybe no data)
    let mut out = Vec::with_capacity(query.len() + 32);
    out.extend_from_slice(&query[..2]); // id
    out.push(0x80 | (query[2] & 0x01)); // QR, RD as asked
    out.push(0x80 | rcode); // RA
    out.extend_from_slice(&[0, 1, 0, answer.is_some() as u8, 0, 0, 0, 0]);
    out.extend_from_slice(&query[12..]);
    if let Some(data) = answer {
        out.extend_from_slice(&[0xC0, 0x0C]); // the question's name
        out.extend_from_slice(&qtype.to_be_bytes());
        out.extend_from_slice(&[0, 1, 0, 0, 0, 30]); // IN, TTL 30
        out.extend_from_slice(&(data.len() as u16).to_be_bytes());
        out.extend_from_slice(&data);
    }
    out
}
