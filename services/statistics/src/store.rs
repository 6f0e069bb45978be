//! The projector's own store: the records it has folded and its checkpoint (next
//! offset per partition), written together in one atomic sled batch per chunk, so a
//! crash can neither double-count nor skip. At start the read model is restored from
//! here and the projector continues from the checkpoint; in the split deployment (a
//! projector node apart from the log) this is what makes a restart cheap and exact.
//!
//! The state is kept in its event form (the stored-event bytes as read from the log):
//! the fold is a pure function of them, so this is the most faithful representation.
//! Records are stored in chunks (key `E` ++ partition ++ offset of the chunk's first
//! record; value: per record its offset (u64 BE), length (u32 BE) and bytes), one sled
//! insert per chunk rather than per record. Stores written before chunks hold one record
//! per key (`e` ++ partition ++ offset); they are read as they are.
//!
//! **Rebuilds never clear in place.** A rebuild folds into a new tree beside the
//! active one ([`ProjectionStore::begin_rebuild`]) and switches to it with one atomic
//! write of the active generation in the `meta` tree ([`ProjectionStore::activate`]); the
//! old tree is dropped afterwards. A rebuild killed at any point leaves the old store
//! active and whole (the half-built tree is dropped at the next open), or the new one
//! active and whole. (sled's `clear` removes keys one by one: killed midway it left a
//! checkpoint over a fraction of the records, which start-up could not tell apart.)

use std::path::Path;

use bytes::Bytes;
use kpr_eventlog::Record;
use kpr_projection::model::ReadModel;

use crate::error::StatsError;

/// Key prefix of single folded records (stores written before chunks): `e` ++
/// partition (u32 BE) ++ offset (u64 BE).
const RECORD: u8 = b'e';
/// Key prefix of chunks of folded records: `E` ++ partition (u32 BE) ++ offset of the
/// first record (u64 BE).
const CHUNK: u8 = b'E';
/// Most bytes of one chunk: sled moves a leaf that grows past a quarter of a segment
/// (128 KiB) into a blob file of its own, so a leaf of chunks must stay well below it.
const CHUNK_BYTES_MAX: usize = 6 * 1024;
/// Bytes before each record in a chunk: offset (u64) and length (u32).
const CHUNK_ENTRY_HEADER: usize = 12;
/// Key prefix of checkpoints: `c` ++ partition (u32 BE).
const CHECKPOINT: u8 = b'c';

fn storage(e: impl std::fmt::Display) -> StatsError {
    StatsError::Internal(format!("projection store: {e}"))
}

fn chunk_key(partition: u32, offset: u64) -> Vec<u8> {
    let mut k = vec![CHUNK];
    k.extend_from_slice(&partition.to_be_bytes());
    k.extend_from_slice(&offset.to_be_bytes());
    k
}

fn checkpoint_key(partition: u32) -> Vec<u8> {
    let mut k = vec![CHECKPOINT];
    k.extend_from_slice(&partition.to_be_bytes());
    k
}

/// Opens the read side's database in `dir`: the release store and the projection store.
pub fn open_stores(
    dir: &Path,
) -> Result<(crate::release::ReleaseStore, ProjectionStore), StatsError> {
    let (db, projection) = ProjectionStore::open_dir(dir)?;
    Ok((crate::release::ReleaseStore::open_in(&db)?, projection))
}

/// The projection store.
#[derive(Debug)]
pub struct ProjectionStore {
    db: sled::Db,
    tree: sled::Tree,
    generation: u64,
}

/// The tree holding which projection generation is active.
const META_TREE: &str = "meta";
/// Its key: the active generation (u64 BE); absent means generation 0.
const ACTIVE_KEY: &[u8] = b"active_projection";
/// Prefix of the trees of generations after 0.
const GENERATION_PREFIX: &str = "projection-";

/// The tree name of a generation (0 is the name stores had before generations).
fn tree_name(generation: u64) -> String {
    if generation == 0 {
        "projection".to_string()
    } else {
        format!("{GENERATION_PREFIX}{generation}")
    }
}

impl ProjectionStore {
    /// Opens the store in an already open sled database: the active generation, after
    /// dropping any tree a killed rebuild left behind.
    pub fn open(db: &sled::Db) -> Result<ProjectionStore, StatsError> {
        let meta = db.open_tree(META_TREE).map_err(storage)?;
        let generation = match meta.get(ACTIVE_KEY).map_err(storage)? {
            Some(v) => u64::from_be_bytes(v.as_ref().try_into().map_err(storage)?),
            None => 0,
        };
        for name in db.tree_names() {
            let Ok(name) = std::str::from_utf8(&name) else {
                continue;
            };
            let stale = (name == "projection" && generation != 0)
                || name
                    .strip_prefix(GENERATION_PREFIX)
                    .and_then(|g| g.parse::<u64>().ok())
                    .is_some_and(|g| g != generation);
            if stale {
                tracing::warn!(
                    tree = name,
                    active = generation,
                    "dropping a projection tree a rebuild left behind"
                );
                db.drop_tree(name).map_err(storage)?;
            }
        }
        Ok(ProjectionStore {
            tree: db.open_tree(tree_name(generation)).map_err(storage)?,
            db: db.clone(),
            generation,
        })
    }

    /// An empty store of the next generation, beside this one, to rebuild into; this
    /// one stays active (and is what a restart opens) until [`ProjectionStore::activate`].
    pub fn begin_rebuild(&self) -> Result<ProjectionStore, StatsError> {
        let generation = self.generation + 1;
        let name = tree_name(generation);
        // A tree of that name can only be a leftover of a killed rebuild.
        self.db.drop_tree(&name).map_err(storage)?;
        Ok(ProjectionStore {
            tree: self.db.open_tree(&name).map_err(storage)?,
            db: self.db.clone(),
            generation,
        })
    }

    /// Makes this (rebuilt) store the active one in one atomic, flushed write, then
    /// drops the trees of other generations.
    pub fn activate(&self) -> Result<(), StatsError> {
        self.tree.flush().map_err(storage)?;
        let meta = self.db.open_tree(META_TREE).map_err(storage)?;
        meta.insert(ACTIVE_KEY, &self.generation.to_be_bytes())
            .map_err(storage)?;
        meta.flush().map_err(storage)?;
        ProjectionStore::open(&self.db).map(|_| ())
    }

    /// Opens (or creates) a store in its own database directory.
    pub fn open_dir(dir: &Path) -> Result<(sled::Db, ProjectionStore), StatsError> {
        let db = sled::Config::new()
            .path(dir)
            .flush_every_ms(Some(500))
            .open()
            .map_err(storage)?;
        let store = ProjectionStore::open(&db)?;
        Ok((db, store))
    }

    /// Stores a chunk of records of one partition and the new checkpoint (the offset
    /// after the last record) in one atomic write.
    pub fn save(&self, partition: u32, records: &[Record]) -> Result<(), StatsError> {
        let Some(last) = records.last() else {
            return Ok(());
        };
        let mut batch = sled::Batch::default();
        let mut chunk: Option<(u64, Vec<u8>)> = None;
        for r in records {
            let entry = CHUNK_ENTRY_HEADER + r.payload.len();
            if let Some((first, bytes)) = chunk
                .take_if(|(_, bytes)| !bytes.is_empty() && bytes.len() + entry > CHUNK_BYTES_MAX)
            {
                batch.insert(chunk_key(partition, first), bytes);
            }
            let (_, bytes) = chunk.get_or_insert_with(|| {
                (
                    r.position.offset,
                    Vec::with_capacity(entry.max(CHUNK_BYTES_MAX)),
                )
            });
            bytes.extend_from_slice(&r.position.offset.to_be_bytes());
            bytes.extend_from_slice(&(r.payload.len() as u32).to_be_bytes());
            bytes.extend_from_slice(&r.payload);
        }
        if let Some((first, bytes)) = chunk {
            batch.insert(chunk_key(partition, first), bytes);
        }
        batch.insert(
            checkpoint_key(partition),
            &(last.position.offset + 1).to_be_bytes(),
        );
        self.tree.apply_batch(batch).map_err(storage)
    }

    /// Calls `f` with partition, offset and stored-event bytes of every stored record,
    /// in order within each partition (single records of an older store first, then
    /// chunks).
    fn each_record(
        &self,
        mut f: impl FnMut(u32, u64, Bytes) -> Result<(), StatsError>,
    ) -> Result<(), StatsError> {
        for item in self.tree.scan_prefix([RECORD]) {
            let (k, v) = item.map_err(storage)?;
            let partition = u32::from_be_bytes(k[1..5].try_into().map_err(storage)?);
            let offset = u64::from_be_bytes(k[5..13].try_into().map_err(storage)?);
            f(partition, offset, Bytes::copy_from_slice(&v))?;
        }
        for item in self.tree.scan_prefix([CHUNK]) {
            let (k, v) = item.map_err(storage)?;
            let partition = u32::from_be_bytes(k[1..5].try_into().map_err(storage)?);
            let whole = Bytes::copy_from_slice(&v);
            let mut at = 0usize;
            while at < whole.len() {
                let header = whole
                    .get(at..at + CHUNK_ENTRY_HEADER)
                    .ok_or_else(|| storage("a chunk ends inside a record header"))?;
                let offset = u64::from_be_bytes(header[..8].try_into().map_err(storage)?);
                let len = u32::from_be_bytes(header[8..].try_into().map_err(storage)?) as usize;
                let start = at + CHUNK_ENTRY_HEADER;
                if whole.len() - start < len {
                    return Err(storage(format!(
                        "record {partition}/{offset} is cut short in its chunk"
                    )));
                }
                f(partition, offset, whole.slice(start..start + len))?;
                at = start + len;
            }
        }
        Ok(())
    }

    /// The checkpoint: next offset per partition.
    pub fn checkpoint(&self) -> Result<Vec<(u32, u64)>, StatsError> {
        let mut out = Vec::new();
        for item in self.tree.scan_prefix([CHECKPOINT]) {
            let (k, v) = item.map_err(storage)?;
            let partition = u32::from_be_bytes(k[1..5].try_into().map_err(storage)?);
            let next = u64::from_be_bytes(v.as_ref().try_into().map_err(storage)?);
            out.push((partition, next));
        }
        Ok(out)
    }

    /// Every stored record: partition, offset and the stored-event bytes, in order
    /// within each partition.
    pub fn records(&self) -> Result<Vec<(u32, u64, Bytes)>, StatsError> {
        let mut out = Vec::new();
        self.each_record(|partition, offset, bytes| {
            out.push((partition, offset, bytes));
            Ok(())
        })?;
        Ok(out)
    }

    /// Restores a read model from the stored records (up to each checkpoint).
    pub fn load(&self) -> Result<ReadModel, StatsError> {
        let checkpoint = self.checkpoint()?;
        let mut model = ReadModel::new();
        self.each_record(|partition, offset, bytes| {
            // Only what the checkpoint covers counts (both are written atomically, so
            // this holds by construction; the check keeps the invariant explicit).
            let covered = checkpoint
                .iter()
                .any(|(p, next)| *p == partition && offset < *next);
            if !covered {
                return Err(storage(format!(
                    "record {partition}/{offset} is beyond the checkpoint"
                )));
            }
            let (event, _) = kpr_wire::decode_stored(&bytes).map_err(storage)?;
            model.apply(partition, offset, &event);
            Ok(())
        })?;
        Ok(model)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kpr_eventlog::Position;

    #[test]
    fn an_empty_store_restores_an_empty_model_and_saves_atomically() {
        let dir = tempfile::tempdir().unwrap();
        let (_db, store) = ProjectionStore::open_dir(dir.path()).unwrap();
        assert!(store.checkpoint().unwrap().is_empty());
        assert_eq!(store.load().unwrap().event_count(), 0);
        // Undecodable payloads are refused on load, not skipped.
        let record = Record {
            position: Position {
                partition: 2,
                offset: 7,
            },
            payload: Bytes::from_static(b"not an event"),
        };
        store.save(2, &[record]).unwrap();
        assert_eq!(store.checkpoint().unwrap(), vec![(2, 8)]);
        assert!(store.load().is_err());
    }

    #[test]
    fn records_come_back_in_order_from_chunks_and_from_older_single_records() {
        let dir = tempfile::tempdir().unwrap();
        let (_db, store) = ProjectionStore::open_dir(dir.path()).unwrap();
        // An older store's single record (key `e`), then chunks written by `save`.
        let mut old_key = vec![RECORD];
        old_key.extend_from_slice(&3u32.to_be_bytes());
        old_key.extend_from_slice(&0u64.to_be_bytes());
        store.tree.insert(old_key, &b"old"[..]).unwrap();
        // Offsets with gaps (as on Kafka) and records big enough to span chunks.
        let records: Vec<Record> = (1..40u64)
            .map(|i| Record {
                position: Position {
                    partition: 3,
                    offset: i * 10,
                },
                payload: Bytes::from(vec![i as u8; 700]),
            })
            .collect();
        store.save(3, &records[..25]).unwrap();
        store.save(3, &records[25..]).unwrap();
        let chunks = store.tree.scan_prefix([CHUNK]).count();
        assert!(chunks > 2, "{chunks} chunks");
        let read = store.records().unwrap();
        assert_eq!(read.len(), 40);
        assert_eq!(read[0], (3, 0, Bytes::from_static(b"old")));
        for (r, (p, offset, bytes)) in records.iter().zip(&read[1..]) {
            assert_eq!((*p, *offset, bytes), (3, r.position.offset, &r.payload));
        }
        assert_eq!(store.checkpoint().unwrap(), vec![(3, 391)]);
    }
}
