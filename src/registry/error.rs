//! The registry layer's one error type: a protocol error the client caused
//! (or a refusal decided by the protocol), or a storage failure with its
//! cause. It becomes the OCI error JSON in one place, [`RegistryError::into_oci`],
//! after the cause has been logged.

use crate::oci::OciError;

use super::storage::StorageError;

#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error(transparent)]
    Oci(#[from] OciError),
    #[error(transparent)]
    Storage(#[from] StorageError),
}

impl RegistryError {
    /// What the client is told. Storage causes (paths, OS errors) stay in
    /// the log.
    pub fn into_oci(self) -> OciError {
        match self {
            RegistryError::Oci(e) => e,
            RegistryError::Storage(StorageError::Full) => OciError::StorageFull,
            RegistryError::Storage(StorageError::Unavailable(_)) => OciError::StorageUnavailable,
            RegistryError::Storage(StorageError::UploadUnknown(_)) => OciError::BlobUploadUnknown,
            RegistryError::Storage(StorageError::OffsetTaken { start, size }) => {
                OciError::ChunkOutOfOrder { start, size }
            }
            RegistryError::Storage(_) => OciError::StorageFailed,
        }
    }

    pub fn is_server_fault(&self) -> bool {
        matches!(self, RegistryError::Storage(e) if !e.is_client_state())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn storage_causes_stay_out_of_the_answer() {
        let io =
            RegistryError::Storage(StorageError::Io(std::io::Error::other("disk /secret/path")));
        assert!(io.is_server_fault());
        let oci = io.into_oci();
        assert_eq!(oci.status(), 500);
        assert!(!oci.message().contains("/secret/path"));
        let full = RegistryError::Storage(StorageError::Full).into_oci();
        assert_eq!(full.status(), 507);
        assert!(!RegistryError::from(OciError::ManifestUnknown).is_server_fault());
        let down = RegistryError::Storage(StorageError::Unavailable(
            "S3 bucket b at http://10.0.0.1:3900: connection refused".into(),
        ))
        .into_oci();
        assert_eq!(down.status(), 503);
        assert_eq!(down.code(), "UNAVAILABLE");
        assert!(!down.message().contains("10.0.0.1"));
    }

    #[test]
    fn an_upload_gone_or_an_offset_taken_is_a_client_answer() {
        let gone = RegistryError::Storage(StorageError::UploadUnknown("upload x".into()));
        assert!(!gone.is_server_fault());
        let gone = gone.into_oci();
        assert_eq!(
            (gone.status().as_u16(), gone.code()),
            (404, "BLOB_UPLOAD_UNKNOWN")
        );
        let taken = RegistryError::Storage(StorageError::OffsetTaken { start: 0, size: 9 });
        assert!(!taken.is_server_fault());
        assert_eq!(taken.into_oci().status().as_u16(), 416);
    }
}
