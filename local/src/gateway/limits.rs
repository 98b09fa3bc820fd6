//! IoT Core's rate limits as the gateway applies them: CONNECTs per client ID
//! (shared by every connection) and publishes and bytes per connection. Each is
//! a token bucket holding one second's worth, so a burst up to the rate passes
//! and a steady stream above it is cut to it.
//!
//! What a client sees when it is over (the emulator's choices; AWS documents the
//! figures, not the answers — `docs/local-stack.md` § Limits):
//! * a CONNECT over the per-client-ID rate: MQTT 5 CONNACK `0x9F` (connection
//!   rate exceeded); MQTT 3.1.1 the connection closed without CONNACK (with
//!   `--connack-on-deny`, return code 3, server unavailable). The connection
//!   already using that client ID is left alone. Only a CONNECT the policy allows
//!   counts, so nobody can lock a client out by connecting as it.
//! * a PUBLISH over the per-connection rates: dropped, as IoT drops throttled
//!   messages; QoS 1 gets no PUBACK on 3.1.1 (so the client's publish never
//!   completes, as users report from AWS: aws-iot-device-sdk-cpp-v2#179 and
//!   #231) and PUBACK `0x97` (quota exceeded; MQTT 5 allows no "message rate too
//!   high" in PUBACK) on MQTT 5. The connection stays.
//!
//! Not here: the connection's 24-hour limit (a deadline in `connection`).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// A token bucket of `rate` tokens per second holding at most `rate`.
#[derive(Debug, Clone)]
pub struct Bucket {
    rate: f64,
    tokens: f64,
    at: Instant,
}

impl Bucket {
    /// A full bucket; `None` for a rate of 0 (no limit).
    pub fn new(rate: u32, now: Instant) -> Option<Self> {
        (rate > 0).then(|| Self {
            rate: f64::from(rate),
            tokens: f64::from(rate),
            at: now,
        })
    }

    /// Takes `cost` tokens if there are that many; a cost above the whole
    /// bucket passes only when the bucket is full, and empties it.
    pub fn take(&mut self, cost: f64, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.rate).min(self.rate);
        self.at = now;
        let cost = cost.min(self.rate);
        if self.tokens + f64::EPSILON >= cost {
            self.tokens -= cost;
            true
        } else {
            false
        }
    }
}

/// Why a PUBLISH was throttled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Throttled {
    /// Over the publishes per second.
    Rate,
    /// Over the bytes per second.
    Throughput,
}

/// One connection's inbound publish limits, made at its first PUBLISH (an idle
/// connection carries none).
#[derive(Debug, Clone)]
pub struct PublishLimits {
    count: Option<Bucket>,
    bytes: Option<Bucket>,
}

impl PublishLimits {
    pub fn new(publishes_per_second: u32, bytes_per_second: u32, now: Instant) -> Self {
        Self {
            count: Bucket::new(publishes_per_second, now),
            bytes: Bucket::new(bytes_per_second, now),
        }
    }

    /// Whether both limits are off.
    pub fn is_unlimited(&self) -> bool {
        self.count.is_none() && self.bytes.is_none()
    }

    /// Counts one PUBLISH of `payload_bytes`; `Err` when it is over a limit (and
    /// then it takes nothing from the other).
    pub fn admit(&mut self, payload_bytes: usize, now: Instant) -> Result<(), Throttled> {
        if let Some(count) = self.count.as_mut()
            && !count.take(1.0, now)
        {
            return Err(Throttled::Rate);
        }
        // Precision beyond 2^53 bytes does not matter: the packet limit is 129 KiB.
        #[allow(clippy::cast_precision_loss)]
        let cost = payload_bytes as f64;
        if let Some(bytes) = self.bytes.as_mut()
            && !bytes.take(cost, now)
        {
            return Err(Throttled::Throughput);
        }
        Ok(())
    }
}

/// When each client ID last had a CONNECT admitted, for the per-client-ID rate.
#[derive(Debug)]
pub struct ConnectRate {
    interval: Option<Duration>,
    last: Mutex<Recent>,
}

#[derive(Debug)]
struct Recent {
    at: HashMap<String, Instant>,
    pruned: Instant,
}

impl ConnectRate {
    /// `per_second` CONNECTs per client ID; 0: no limit.
    pub fn new(per_second: u32) -> Self {
        Self {
            interval: (per_second > 0).then(|| Duration::from_secs(1) / per_second),
            last: Mutex::new(Recent {
                at: HashMap::new(),
                pruned: Instant::now(),
            }),
        }
    }

    /// Admits a CONNECT for `client_id` now, or says how long until one would be.
    pub fn admit(&self, client_id: &str, now: Instant) -> Result<(), Duration> {
        let Some(interval) = self.interval else {
            return Ok(());
        };
        let mut recent = self.last.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(at) = recent.at.get(client_id) {
            let since = now.saturating_duration_since(*at);
            if since < interval {
                return Err(interval - since);
            }
        }
        // Entries older than the interval decide nothing: drop them, at most
        // once per interval, so the map holds about one interval's client IDs.
        if now.saturating_duration_since(recent.pruned) >= interval {
            recent.at.retain(|_, at| now.saturating_duration_since(*at) < interval);
            recent.pruned = now;
        }
        recent.at.insert(client_id.to_owned(), now);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bucket_passes_a_burst_up_to_its_rate_then_refills_at_the_rate() {
        let start = Instant::now();
        let mut bucket = Bucket::new(100, start).unwrap();
        assert_eq!((0..150).filter(|_| bucket.take(1.0, start)).count(), 100);
        assert!(!bucket.take(1.0, start + Duration::from_millis(5)));
        // 10 ms at 100/s is one token.
        assert!(bucket.take(1.0, start + Duration::from_millis(10)));
        assert!(!bucket.take(1.0, start + Duration::from_millis(10)));
        assert!(Bucket::new(0, start).is_none());
    }

    #[test]
    fn a_cost_larger_than_the_bucket_passes_only_from_a_full_bucket() {
        let start = Instant::now();
        let mut bucket = Bucket::new(10, start).unwrap();
        assert!(bucket.take(50.0, start));
        assert!(!bucket.take(1.0, start));
        assert!(bucket.take(50.0, start + Duration::from_secs(1)));
    }

    #[test]
    fn publish_limits_say_which_limit_a_publish_is_over() {
        let start = Instant::now();
        let mut limits = PublishLimits::new(100, 1000, start);
        assert_eq!(limits.admit(600, start), Ok(()));
        assert_eq!(limits.admit(600, start), Err(Throttled::Throughput));
        let mut limits = PublishLimits::new(2, 0, start);
        assert_eq!(limits.admit(1, start), Ok(()));
        assert_eq!(limits.admit(1, start), Ok(()));
        assert_eq!(limits.admit(1, start), Err(Throttled::Rate));
        assert!(PublishLimits::new(0, 0, start).is_unlimited());
    }

    #[test]
    fn one_connect_per_second_per_client_id_and_other_ids_are_not_affected() {
        let rate = ConnectRate::new(1);
        let start = Instant::now();
        assert_eq!(rate.admit("a", start), Ok(()));
        assert_eq!(rate.admit("b", start), Ok(()));
        let wait = rate.admit("a", start + Duration::from_millis(400)).unwrap_err();
        assert_eq!(wait, Duration::from_millis(600));
        assert_eq!(rate.admit("a", start + Duration::from_secs(1)), Ok(()));
        assert_eq!(ConnectRate::new(0).admit("a", start), Ok(()));
    }

    #[test]
    fn old_client_ids_are_pruned_so_the_map_does_not_grow_without_bound() {
        let rate = ConnectRate::new(1);
        let start = Instant::now();
        for i in 0..1000 {
            rate.admit(&format!("c{i}"), start).unwrap();
        }
        rate.admit("late", start + Duration::from_secs(2)).unwrap();
        assert_eq!(rate.last.lock().unwrap().at.len(), 1);
    }
}
