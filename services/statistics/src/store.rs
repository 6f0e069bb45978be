//! The projector's own store: the records it has folded and its checkpoint (next
//! offset per partition), written together in one atomic sled batch per chunk, so a
//! crash can neither double-count nor skip. At start the read model is restored from
//! here and the projector continues from the checkpoint; in the split deployment (a
//! projector node apart from the log) this is what makes a restart cheap and exact.
//!
//! The state is kept in its event form (the stored-event bytes as read from the log):
//! the fold is a pure function of them, so this is the most faithful representation.

use std::path::Path;

use bytes::Bytes;
use kpr_eventlog::Record;
use kpr_projection::model::ReadModel;

use crate::error::StatsError;

/// Key prefix of folded records: `e` ++ partition (u32 BE) ++ offset (u64 BE).
const RECORD: u8 = b'e';
/// Key prefix of checkpoints: `c` ++ partition (u32 BE).
const CHECKPOINT: u8 = b'c';

fn storage(e: impl std::fmt::Display) -> StatsError {
    StatsError::Internal(format!("projection store: {e}"))
}

fn record_key(partition: u32, offset: u64) -> Vec<u8> {
    let mut k = vec![RECORD];
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
    tree: sled::Tree,
}

impl ProjectionStore {
    /// Opens the store in an already open sled database.
    pub fn open(db: &sled::Db) -> Result<ProjectionStore, StatsError> {
        Ok(ProjectionStore {
            tree: db.open_tree("projection").map_err(storage)?,
        })
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
        for r in records {
            batch.insert(
                record_key(r.position.partition, r.position.offset),
                r.payload.as_ref(),
            );
        }
        batch.insert(
            checkpoint_key(partition),
            &(last.position.offset + 1).to_be_bytes(),
        );
        self.tree.apply_batch(batch).map_err(storage)
    }

    /// Removes every folded record and checkpoint (before a rebuild from zero).
    pub fn clear(&self) -> Result<(), StatsError> {
        self.tree.clear().map_err(storage)?;
        self.tree.flush().map_err(storage)?;
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

    /// Every stored record: partition, offset and the stored-event bytes, in key order.
    pub fn records(&self) -> Result<Vec<(u32, u64, Bytes)>, StatsError> {
        let mut out = Vec::new();
        for item in self.tree.scan_prefix([RECORD]) {
            let (k, v) = item.map_err(storage)?;
            let partition = u32::from_be_bytes(k[1..5].try_into().map_err(storage)?);
            let offset = u64::from_be_bytes(k[5..13].try_into().map_err(storage)?);
            out.push((partition, offset, Bytes::copy_from_slice(&v)));
        }
        Ok(out)
    }

    /// Restores a read model from the stored records (up to each checkpoint).
    pub fn load(&self) -> Result<ReadModel, StatsError> {
        let checkpoint = self.checkpoint()?;
        let mut model = ReadModel::new();
        for item in self.tree.scan_prefix([RECORD]) {
            let (k, v) = item.map_err(storage)?;
            let partition = u32::from_be_bytes(k[1..5].try_into().map_err(storage)?);
            let offset = u64::from_be_bytes(k[5..13].try_into().map_err(storage)?);
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
            let (event, _) =
                kpr_wire::decode_stored(&Bytes::copy_from_slice(&v)).map_err(storage)?;
            model.apply(partition, offset, &event);
        }
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
}
