//! A keyed, compacted topic: the latest value per key survives. Projector nodes
//! publish their output here (one snapshot per municipality) and statistics nodes read
//! it; the event log itself never uses it.

use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::RDKafkaErrorCode;
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};

use kpr_eventlog::LogError;

fn kafka(e: rdkafka::error::KafkaError) -> LogError {
    LogError::Unavailable(format!("kafka: {e}"))
}

/// One published key and value.
pub type KeyValue = (Vec<u8>, Vec<u8>);

/// A compacted topic of key → latest value.
pub struct KeyedTopic {
    topic: String,
    partitions: usize,
    producer: FutureProducer,
    consumer: BaseConsumer,
}

impl std::fmt::Debug for KeyedTopic {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyedTopic")
            .field("topic", &self.topic)
            .finish()
    }
}

impl KeyedTopic {
    /// Connects, creating the topic (`cleanup.policy=compact`, `partitions`
    /// partitions) when it does not exist, and positions the reader at the start.
    pub async fn open(
        brokers: &str,
        topic: &str,
        partitions: u32,
        replication: i32,
        extra: &[(String, String)],
    ) -> Result<KeyedTopic, LogError> {
        let admin: AdminClient<DefaultClientContext> = crate::client_config(brokers, extra)
            .create()
            .map_err(kafka)?;
        let new = NewTopic::new(
            topic,
            partitions.max(1) as i32,
            TopicReplication::Fixed(replication),
        )
        .set("cleanup.policy", "compact");
        for result in admin
            .create_topics(
                [&new],
                &AdminOptions::new().operation_timeout(Some(Duration::from_secs(10))),
            )
            .await
            .map_err(kafka)?
        {
            match result {
                Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
                Err((name, code)) => {
                    return Err(LogError::Unavailable(format!(
                        "kafka: cannot create topic {name}: {code}"
                    )));
                }
            }
        }
        let producer: FutureProducer = crate::client_config(brokers, extra)
            .set("enable.idempotence", "true")
            .set("acks", "all")
            .set("message.max.bytes", "67108864")
            .create()
            .map_err(kafka)?;
        let consumer: BaseConsumer = crate::client_config(brokers, extra)
            .set("group.id", format!("kpr-keyed-{topic}"))
            .set("enable.auto.commit", "false")
            .set("enable.partition.eof", "false")
            .set("fetch.wait.max.ms", "50")
            .set("fetch.message.max.bytes", "67108864")
            .create()
            .map_err(kafka)?;
        let topic = topic.to_string();
        let count = tokio::task::block_in_place(|| -> Result<usize, LogError> {
            for _ in 0..100 {
                let metadata = consumer
                    .fetch_metadata(Some(&topic), Duration::from_secs(10))
                    .map_err(kafka)?;
                let n = metadata
                    .topics()
                    .iter()
                    .find(|t| t.name() == topic)
                    .map_or(0, |t| t.partitions().len());
                if n > 0 {
                    return Ok(n);
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            Err(LogError::Unavailable(format!(
                "kafka: topic {topic} has no partitions"
            )))
        })?;
        let mut assignment = TopicPartitionList::new();
        for p in 0..count {
            assignment
                .add_partition_offset(&topic, p as i32, Offset::Beginning)
                .map_err(kafka)?;
        }
        consumer.assign(&assignment).map_err(kafka)?;
        Ok(KeyedTopic {
            topic,
            partitions: count,
            producer,
            consumer,
        })
    }

    /// Publishes `value` under `key` and waits until the brokers have it (acks=all).
    pub async fn publish(&self, key: &[u8], value: &[u8]) -> Result<(), LogError> {
        let record = FutureRecord::to(&self.topic).key(key).payload(value);
        match self.producer.send(record, Duration::from_secs(30)).await {
            Ok(_) => Ok(()),
            Err((e, _)) => Err(kafka(e)),
        }
    }

    /// The end of every partition now: `(partition, low, high)` watermarks. What was
    /// published before this call lies below `high`.
    pub fn ends(&self) -> Result<Vec<(i32, i64, i64)>, LogError> {
        tokio::task::block_in_place(|| {
            (0..self.partitions as i32)
                .map(|p| {
                    let (low, high) = self
                        .consumer
                        .fetch_watermarks(&self.topic, p, Duration::from_secs(10))
                        .map_err(kafka)?;
                    Ok((p, low, high))
                })
                .collect()
        })
    }

    /// Whether the reader has read everything below `ends` (from [`KeyedTopic::ends`]).
    pub fn has_read(&self, ends: &[(i32, i64, i64)]) -> Result<bool, LogError> {
        let positions = self.consumer.position().map_err(kafka)?;
        Ok(ends.iter().all(|&(p, low, high)| {
            high <= low
                || matches!(
                    positions.find_partition(&self.topic, p).map(|e| e.offset()),
                    Some(Offset::Offset(next)) if next >= high
                )
        }))
    }

    /// The next published (key, value), waiting up to `wait`; `None` when none came.
    pub fn poll(&self, wait: Duration) -> Result<Option<KeyValue>, LogError> {
        tokio::task::block_in_place(|| match self.consumer.poll(wait) {
            None => Ok(None),
            Some(Err(e)) => Err(kafka(e)),
            Some(Ok(m)) => Ok(Some((
                m.key().unwrap_or_default().to_vec(),
                m.payload().unwrap_or_default().to_vec(),
            ))),
        })
    }
}
