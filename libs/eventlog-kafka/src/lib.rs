//! The Apache Kafka backend of the event log, through rdkafka (librdkafka).
//!
//! - One topic per deployment; the caller chooses the partition with the shared
//!   partitioner (`kpr_eventlog::partition_for`), and records are produced to that
//!   explicit partition, so a log copied between backends keeps its per-partition order.
//! - **One append batch is one Kafka record** (a length-prefixed list of payloads), so a
//!   batch is atomic without Kafka transactions (which the brokers available here do
//!   not support).
//! - The producer is idempotent with `acks=all`: a ticket resolves once every in-sync
//!   replica has the record, and retries never duplicate or reorder.
//! - Positions: the offset of event `i` of the batch stored at Kafka offset `o` is
//!   `o << 16 | i`, so offsets strictly increase within a partition (with gaps) and a
//!   read can start in the middle of a batch. A batch holds at most 65 536 events.

pub mod keyed;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use kpr_eventlog::{AppendTicket, EventLog, LogError, Position, ReadOptions, Record};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::{Offset, TopicPartitionList};

/// Bits of a position's offset that hold the index within a batch.
const INDEX_BITS: u32 = 16;
/// Most events in one batch (one Kafka record).
pub const BATCH_EVENTS_MAX: usize = 1 << INDEX_BITS;
/// How long metadata and watermark calls may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);
/// The least a caught-up read polls before it answers "nothing new".
const CAUGHT_UP_POLL_MIN: Duration = Duration::from_millis(100);
/// How long a read keeps polling for records the watermark says exist.
const CATCH_UP_POLL_MAX: Duration = Duration::from_secs(15);

/// How to reach the topic.
#[derive(Clone, Debug)]
pub struct KafkaOptions {
    /// `host:port,host:port` of the brokers.
    pub brokers: String,
    /// The deployment's topic.
    pub topic: String,
    /// Partitions when the topic has to be created.
    pub partitions: u32,
    /// Replication factor when the topic has to be created.
    pub replication: i32,
    /// Most records waiting in the producer's queue (QueueFull beyond).
    pub queue_records_max: u32,
    /// librdkafka settings applied to every client before kpr's own (TLS, SASL:
    /// `security.protocol=SASL_SSL`, `ssl.ca.location=…`, `sasl.mechanism=SCRAM-SHA-512`…).
    /// kpr's settings that its guarantees rest on (idempotence, acks, offsets) win.
    pub client_config: Vec<(String, String)>,
}

impl KafkaOptions {
    /// Defaults for `brokers` and `topic`.
    pub fn new(brokers: &str, topic: &str, partitions: u32) -> KafkaOptions {
        KafkaOptions {
            brokers: brokers.to_string(),
            topic: topic.to_string(),
            partitions,
            replication: 1,
            queue_records_max: 100_000,
            client_config: Vec::new(),
        }
    }
}

/// A librdkafka configuration: the brokers, then the deployment's settings (TLS,
/// SASL), then whatever the caller sets on top.
pub fn client_config(brokers: &str, extra: &[(String, String)]) -> ClientConfig {
    let mut config = ClientConfig::new();
    config.set("bootstrap.servers", brokers);
    for (key, value) in extra {
        config.set(key, value);
    }
    config
}

fn kafka(e: KafkaError) -> LogError {
    LogError::Unavailable(format!("kafka: {e}"))
}

struct Reader {
    consumer: BaseConsumer,
    /// The Kafka offset the consumer will return next, if known.
    next: Option<i64>,
}

/// The Kafka log.
pub struct KafkaLog {
    options: KafkaOptions,
    producer: FutureProducer,
    readers: Vec<Mutex<Option<Reader>>>,
    partition_count: u32,
    closed: AtomicBool,
}

impl std::fmt::Debug for KafkaLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaLog")
            .field("topic", &self.options.topic)
            .field("partition_count", &self.partition_count)
            .finish()
    }
}

fn encode_batch(payloads: &[Bytes]) -> Vec<u8> {
    let mut out = Vec::with_capacity(4 + payloads.iter().map(|p| 4 + p.len()).sum::<usize>());
    out.extend_from_slice(&(payloads.len() as u32).to_be_bytes());
    for p in payloads {
        out.extend_from_slice(&(p.len() as u32).to_be_bytes());
        out.extend_from_slice(p);
    }
    out
}

fn decode_batch(partition: u32, offset: i64, value: &[u8]) -> Result<Vec<Bytes>, LogError> {
    let corrupt = |reason: &str| LogError::Corrupt {
        partition,
        offset: (offset.max(0) as u64) << INDEX_BITS,
        reason: reason.to_string(),
    };
    let read_u32 = |at: usize| -> Result<usize, LogError> {
        value
            .get(at..at + 4)
            .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize)
            .ok_or_else(|| corrupt("truncated batch"))
    };
    let count = read_u32(0)?;
    let mut at = 4;
    let mut out = Vec::with_capacity(count.min(BATCH_EVENTS_MAX));
    for _ in 0..count {
        let len = read_u32(at)?;
        at += 4;
        let payload = value
            .get(at..at + len)
            .ok_or_else(|| corrupt("truncated payload"))?;
        out.push(Bytes::copy_from_slice(payload));
        at += len;
    }
    if at != value.len() {
        return Err(corrupt("trailing bytes after the batch"));
    }
    Ok(out)
}

impl KafkaLog {
    /// Connects, creating the topic with `options.partitions` partitions if it does not
    /// exist; an existing topic keeps its partitions.
    pub async fn open(options: KafkaOptions) -> Result<KafkaLog, LogError> {
        let admin: AdminClient<DefaultClientContext> =
            client_config(&options.brokers, &options.client_config)
                .create()
                .map_err(kafka)?;
        // The log keeps every fact forever (no time or size retention), and takes
        // batches as large as the producer may send.
        let topic = NewTopic::new(
            &options.topic,
            options.partitions.max(1) as i32,
            TopicReplication::Fixed(options.replication),
        )
        .set("retention.ms", "-1")
        .set("retention.bytes", "-1")
        .set("max.message.bytes", "67108864");
        let created = admin
            .create_topics(
                [&topic],
                &AdminOptions::new().operation_timeout(Some(CALL_TIMEOUT)),
            )
            .await
            .map_err(kafka)?;
        for result in created {
            match result {
                Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
                Err((name, code)) => {
                    return Err(LogError::Unavailable(format!(
                        "kafka: cannot create topic {name}: {code}"
                    )));
                }
            }
        }
        let producer: FutureProducer = client_config(&options.brokers, &options.client_config)
            .set("enable.idempotence", "true")
            // A batch that fails for good must stop the producer rather than leave a
            // gap that later batches (validated against it) are stored behind.
            .set("enable.gapless.guarantee", "true")
            .set("acks", "all")
            .set("linger.ms", "1")
            .set("message.max.bytes", "67108864")
            .set(
                "queue.buffering.max.messages",
                options.queue_records_max.to_string(),
            )
            .create()
            .map_err(kafka)?;
        let partition_count = Self::partitions_of(&options).await?;
        Ok(KafkaLog {
            readers: (0..partition_count).map(|_| Mutex::new(None)).collect(),
            options,
            producer,
            partition_count,
            closed: AtomicBool::new(false),
        })
    }

    async fn partitions_of(options: &KafkaOptions) -> Result<u32, LogError> {
        let options = options.clone();
        tokio::task::spawn_blocking(move || {
            let consumer: BaseConsumer = client_config(&options.brokers, &options.client_config)
                .create()
                .map_err(kafka)?;
            let deadline = Instant::now() + CALL_TIMEOUT;
            loop {
                let metadata = consumer
                    .fetch_metadata(Some(&options.topic), CALL_TIMEOUT)
                    .map_err(kafka)?;
                let count = metadata
                    .topics()
                    .iter()
                    .find(|t| t.name() == options.topic)
                    .map_or(0, |t| t.partitions().len());
                if count > 0 {
                    return Ok(count as u32);
                }
                if Instant::now() > deadline {
                    return Err(LogError::Unavailable(format!(
                        "kafka: topic {} has no partitions",
                        options.topic
                    )));
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        })
        .await
        .map_err(|e| LogError::Storage(e.to_string()))?
    }

    fn check_partition(&self, partition: u32) -> Result<(), LogError> {
        if partition >= self.partition_count {
            return Err(LogError::NoSuchPartition {
                partition,
                count: self.partition_count,
            });
        }
        Ok(())
    }

    fn new_reader(&self) -> Result<Reader, LogError> {
        let consumer: BaseConsumer =
            client_config(&self.options.brokers, &self.options.client_config)
                .set("group.id", format!("kpr-reader-{}", self.options.topic))
                .set("enable.auto.commit", "false")
                .set("enable.partition.eof", "false")
                .set("fetch.wait.max.ms", "50")
                .set("fetch.message.max.bytes", "67108864")
                // Reading below the log's start is an error, never a silent jump to the end.
                .set("auto.offset.reset", "error")
                .create()
                .map_err(kafka)?;
        Ok(Reader {
            consumer,
            next: None,
        })
    }

    fn high_watermark(&self, reader: &Reader, partition: u32) -> Result<i64, LogError> {
        reader
            .consumer
            .fetch_watermarks(&self.options.topic, partition as i32, CALL_TIMEOUT)
            .map(|(_, high)| high)
            .map_err(kafka)
    }

    /// Blocking read (runs on the blocking pool).
    fn read_blocking(
        &self,
        partition: u32,
        from_offset: u64,
        options: ReadOptions,
    ) -> Result<Vec<Record>, LogError> {
        let kafka_from = (from_offset >> INDEX_BITS) as i64;
        let mut slot = self.readers[partition as usize]
            .lock()
            .map_err(|_| LogError::Storage("reader lock poisoned".into()))?;
        if slot.is_none() {
            *slot = Some(self.new_reader()?);
        }
        let Some(reader) = slot.as_mut() else {
            return Err(LogError::Storage("no reader".into()));
        };
        if reader.next != Some(kafka_from) {
            let mut assignment = TopicPartitionList::new();
            assignment
                .add_partition_offset(
                    &self.options.topic,
                    partition as i32,
                    Offset::Offset(kafka_from),
                )
                .map_err(kafka)?;
            reader.consumer.assign(&assignment).map_err(kafka)?;
            reader.next = Some(kafka_from);
        }
        // While the reader is below the high watermark, records exist: poll until they
        // arrive. At the watermark, wait at most the caller's wait for new ones.
        let mut high = self.high_watermark(reader, partition)?;
        let started = Instant::now();
        let wait = Duration::from_millis(u64::from(options.wait_ms_max));
        let mut out: Vec<Record> = Vec::new();
        while out.len() < options.records_max as usize {
            let behind = reader.next.unwrap_or(kafka_from) < high;
            let timeout = if !out.is_empty() {
                Duration::ZERO
            } else if behind {
                CATCH_UP_POLL_MAX.saturating_sub(started.elapsed())
            } else {
                // The watermark is a hint (some Kafka-protocol brokers report it late):
                // give a caught-up read at least a short poll before saying "nothing".
                wait.max(CAUGHT_UP_POLL_MIN)
                    .saturating_sub(started.elapsed())
            };
            let Some(message) = reader.consumer.poll(timeout) else {
                if out.is_empty() && behind {
                    return Err(LogError::Unavailable(format!(
                        "kafka: partition {partition} has records below offset {high} that did not arrive"
                    )));
                }
                break;
            };
            let message = message.map_err(kafka)?;
            let offset = message.offset();
            reader.next = Some(offset + 1);
            high = high.max(offset + 1);
            let payloads = decode_batch(partition, offset, message.payload().unwrap_or_default())?;
            for (i, payload) in payloads.into_iter().enumerate() {
                let position = Position {
                    partition,
                    offset: ((offset as u64) << INDEX_BITS) | i as u64,
                };
                if position.offset >= from_offset && out.len() < options.records_max as usize {
                    out.push(Record { position, payload });
                }
            }
        }
        Ok(out)
    }
}

impl EventLog for KafkaLog {
    fn partition_count(&self) -> u32 {
        self.partition_count
    }

    fn append(&self, partition: u32, payloads: Vec<Bytes>) -> Result<AppendTicket, LogError> {
        self.check_partition(partition)?;
        if self.closed.load(Ordering::SeqCst) {
            return Err(LogError::Unavailable("the log is closed".into()));
        }
        let (reply, ticket) = AppendTicket::channel();
        if payloads.is_empty() {
            let _ = reply.send(Ok(Vec::new()));
            return Ok(ticket);
        }
        if payloads.len() > BATCH_EVENTS_MAX {
            return Err(LogError::Storage(format!(
                "a Kafka batch holds at most {BATCH_EVENTS_MAX} events"
            )));
        }
        let count = payloads.len() as u64;
        let value = encode_batch(&payloads);
        let key = partition.to_be_bytes();
        let record = FutureRecord::to(&self.options.topic)
            .partition(partition as i32)
            .key(&key[..])
            .payload(&value[..]);
        let delivery = match self.producer.send_result(record) {
            Ok(delivery) => delivery,
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {
                return Err(LogError::QueueFull {
                    capacity_batches: self.options.queue_records_max,
                });
            }
            Err((e, _)) => return Err(kafka(e)),
        };
        tokio::spawn(async move {
            let result = match delivery.await {
                Ok(Ok(delivered)) => {
                    let base = (delivered.offset as u64) << INDEX_BITS;
                    Ok((0..count)
                        .map(|i| Position {
                            partition,
                            offset: base | i,
                        })
                        .collect())
                }
                Ok(Err((e, _))) => Err(kafka(e)),
                Err(_) => Err(LogError::Unavailable(
                    "kafka: the producer dropped the record".into(),
                )),
            };
            let _ = reply.send(result);
        });
        Ok(ticket)
    }

    async fn read(
        &self,
        partition: u32,
        from_offset: u64,
        options: ReadOptions,
    ) -> Result<Vec<Record>, LogError> {
        self.check_partition(partition)?;
        tokio::task::block_in_place(|| self.read_blocking(partition, from_offset, options))
    }

    async fn end_offset(&self, partition: u32) -> Result<u64, LogError> {
        self.check_partition(partition)?;
        tokio::task::block_in_place(|| {
            let mut slot = self.readers[partition as usize]
                .lock()
                .map_err(|_| LogError::Storage("reader lock poisoned".into()))?;
            if slot.is_none() {
                *slot = Some(self.new_reader()?);
            }
            let Some(reader) = slot.as_ref() else {
                return Err(LogError::Storage("no reader".into()));
            };
            Ok((self.high_watermark(reader, partition)?.max(0) as u64) << INDEX_BITS)
        })
    }

    async fn close(&self) -> Result<(), LogError> {
        self.closed.store(true, Ordering::SeqCst);
        tokio::task::block_in_place(|| self.producer.flush(Duration::from_secs(30))).map_err(kafka)
    }
}

/// Shares one log between owners (for composing services).
pub type SharedKafkaLog = Arc<KafkaLog>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_round_trip_and_tears_are_caught() {
        let payloads = vec![
            Bytes::from_static(b"a"),
            Bytes::new(),
            Bytes::from_static(b"ccc"),
        ];
        let encoded = encode_batch(&payloads);
        assert_eq!(decode_batch(0, 5, &encoded).unwrap(), payloads);
        assert!(decode_batch(0, 5, &encoded[..encoded.len() - 1]).is_err());
        let mut longer = encoded.clone();
        longer.push(0);
        assert!(decode_batch(0, 5, &longer).is_err());
    }
}
