//! Where an image is written: one tar ([`Format::Oci`]) or a layout directory
//! ([`Format::OciDir`]), built beside the output and renamed into place only when complete.
//!
//! A blob's name is its digest, known only once it is written; in the tar, a blob is therefore
//! written after a 512-byte gap that receives its header (name and size) when the blob is
//! complete, so every layer is compressed and written exactly once, straight into the image.
//! A blob that is already there (two identical layers) is cut off again.

use std::collections::HashSet;
use std::fs::File;
use std::io::{self, BufWriter, Seek, SeekFrom, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use tar::EntryType;

use crate::archive::Error as ArchiveError;
use crate::archive::Format;
use crate::archive::header::{Member, write_header, write_padding};
use crate::error::{Error, Result};

/// A blob written by [`Output::stream_blob`].
#[derive(Debug, Clone, Default)]
pub struct Blob {
    /// `sha256:…` of the bytes written.
    pub digest: String,
    /// For a layer, `sha256:…` of its uncompressed tar.
    pub diff_id: String,
    /// Bytes written.
    pub size: u64,
    /// For a layer: tar members.
    pub members: u64,
    /// For a layer: content bytes.
    pub content_bytes: u64,
}

/// An image being written.
pub enum Output {
    /// One tar.
    Tar(TarOutput),
    /// A layout directory.
    Dir(DirOutput),
}

/// The tar form.
pub struct TarOutput {
    temp: tempfile::NamedTempFile,
    file: BufWriter<File>,
    position: u64,
    mtime: u64,
    blobs: HashSet<String>,
    output: PathBuf,
}

/// The directory form.
pub struct DirOutput {
    temp: tempfile::TempDir,
    blobs: HashSet<String>,
    output: PathBuf,
}

fn write_error(output: &Path) -> impl Fn(io::Error) -> Error + '_ {
    move |source| Error::io(format!("cannot write `{}`", output.display()), source)
}

fn hex_of(digest: &str) -> &str {
    digest.trim_start_matches("sha256:")
}

impl Output {
    /// Starts an image at a temporary path beside `output`, with its `oci-layout` file.
    ///
    /// # Errors
    /// I/O errors naming the directory.
    pub fn create(format: Format, output: &Path, mtime: u64) -> Result<Output> {
        let dir = match output.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => parent.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let cannot_create = |source| {
            Error::io(
                format!("cannot create a temporary file in `{}`", dir.display()),
                source,
            )
        };
        let builder = || {
            let mut builder = tempfile::Builder::new();
            builder.prefix(".gopack-partial-");
            builder
        };
        let mut out = if format == Format::OciDir {
            let temp = builder().tempdir_in(&dir).map_err(cannot_create)?;
            fs_err::create_dir_all(temp.path().join("blobs/sha256"))
                .map_err(|source| Error::io("cannot create the image's directories", source))?;
            Output::Dir(DirOutput {
                temp,
                blobs: HashSet::new(),
                output: output.to_path_buf(),
            })
        } else {
            let temp = builder().tempfile_in(&dir).map_err(cannot_create)?;
            let file = temp.as_file().try_clone().map_err(write_error(output))?;
            let mut tar = TarOutput {
                temp,
                file: BufWriter::with_capacity(1 << 20, file),
                position: 0,
                mtime,
                blobs: HashSet::new(),
                output: output.to_path_buf(),
            };
            for dir in ["blobs", "blobs/sha256"] {
                tar.header(dir.as_bytes(), EntryType::Directory, 0o755, 0)
                    .map_err(write_error(output))?;
            }
            Output::Tar(tar)
        };
        out.put_file("oci-layout", super::OCI_LAYOUT)?;
        Ok(out)
    }

    /// Adds a file at the top of the layout (`index.json`, `manifest.json`, …).
    ///
    /// # Errors
    /// I/O errors naming the image.
    pub fn put_file(&mut self, name: &str, bytes: &[u8]) -> Result<()> {
        match self {
            Output::Tar(tar) => tar.file_member(name, bytes),
            Output::Dir(dir) => {
                let path = dir.temp.path().join(name);
                fs_err::write(&path, bytes)
                    .map_err(|source| Error::io("cannot write the image", source))
            }
        }
    }

    /// Adds a blob held in memory under its digest (`sha256:…`), once.
    ///
    /// # Errors
    /// I/O errors naming the image.
    pub fn put_blob(&mut self, digest: &str, bytes: &[u8]) -> Result<()> {
        match self {
            Output::Tar(tar) => {
                if tar.blobs.insert(digest.to_string()) {
                    tar.file_member(&format!("blobs/sha256/{}", hex_of(digest)), bytes)?;
                }
                Ok(())
            }
            Output::Dir(dir) => {
                if dir.blobs.insert(digest.to_string()) {
                    let path = dir.temp.path().join("blobs/sha256").join(hex_of(digest));
                    fs_err::write(&path, bytes)
                        .map_err(|source| Error::io("cannot write the image", source))?;
                }
                Ok(())
            }
        }
    }

    /// Adds a blob that `write` streams, named by the digest it returns (the digest of what
    /// it wrote: the writer takes it while writing). A blob already there is dropped again.
    ///
    /// # Errors
    /// What `write` returns; I/O errors naming the image.
    pub fn stream_blob(
        &mut self,
        write: impl FnOnce(&mut dyn Write) -> Result<Blob>,
    ) -> Result<Blob> {
        match self {
            Output::Tar(tar) => tar.stream_blob(write),
            Output::Dir(dir) => dir.stream_blob(write),
        }
    }

    /// Completes the image and moves it to `output`; returns its size in bytes.
    ///
    /// # Errors
    /// I/O errors naming the image, [`ArchiveError::OutputExists`], [`Error::Interrupted`].
    pub fn finish(self, output: &Path, force: bool, cancel: &AtomicBool) -> Result<u64> {
        match self {
            Output::Tar(tar) => tar.finish(force, cancel),
            Output::Dir(dir) => dir.finish(output, force, cancel),
        }
    }
}

impl Write for TarOutput {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let written = self.file.write(buf)?;
        self.position += written as u64;
        Ok(written)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

impl TarOutput {
    fn header(
        &mut self,
        name: &[u8],
        entry_type: EntryType,
        mode: u32,
        size: u64,
    ) -> io::Result<()> {
        let member = Member {
            path: name,
            entry_type,
            mode,
            mtime: self.mtime,
            size,
            link: None,
        };
        write_header(self, &member)
    }

    fn file_member(&mut self, name: &str, bytes: &[u8]) -> Result<()> {
        let output = self.output.clone();
        let fail = write_error(&output);
        self.header(
            name.as_bytes(),
            EntryType::Regular,
            0o644,
            bytes.len() as u64,
        )
        .map_err(&fail)?;
        self.write_all(bytes).map_err(&fail)?;
        write_padding(self, bytes.len() as u64).map_err(&fail)
    }

    fn stream_blob(&mut self, write: impl FnOnce(&mut dyn Write) -> Result<Blob>) -> Result<Blob> {
        let output = self.output.clone();
        let fail = write_error(&output);
        let header_at = self.position;
        self.write_all(&[0u8; 512]).map_err(&fail)?;
        let blob = write(self)?;
        let size = self.position - header_at - 512;
        if size != blob.size {
            return Err(fail(io::Error::other(format!(
                "a blob of {} bytes was written as {size}",
                blob.size
            ))));
        }
        if !self.blobs.insert(blob.digest.clone()) {
            self.file.seek(SeekFrom::Start(header_at)).map_err(&fail)?;
            self.file.get_ref().set_len(header_at).map_err(&fail)?;
            self.position = header_at;
            return Ok(blob);
        }
        write_padding(self, size).map_err(&fail)?;
        let end = self.position;
        self.file.seek(SeekFrom::Start(header_at)).map_err(&fail)?;
        self.position = header_at;
        let name = format!("blobs/sha256/{}", hex_of(&blob.digest));
        self.header(name.as_bytes(), EntryType::Regular, 0o644, size)
            .map_err(&fail)?;
        self.file.seek(SeekFrom::Start(end)).map_err(&fail)?;
        self.position = end;
        Ok(blob)
    }

    fn finish(mut self, force: bool, cancel: &AtomicBool) -> Result<u64> {
        let output = self.output.clone();
        let fail = write_error(&output);
        // Two zero blocks end a tar archive.
        self.write_all(&[0u8; 1024]).map_err(&fail)?;
        let size = self.position;
        let file = self
            .file
            .into_inner()
            .map_err(|err| fail(err.into_error()))?;
        file.sync_all().map_err(&fail)?;
        self.temp
            .as_file()
            .set_permissions(std::fs::Permissions::from_mode(0o644))
            .map_err(&fail)?;
        if cancel.load(Ordering::Relaxed) {
            return Err(Error::Interrupted);
        }
        let persisted = if force {
            self.temp.persist(&output).map_err(|err| err.error)
        } else {
            self.temp
                .persist_noclobber(&output)
                .map_err(|err| err.error)
        };
        persisted.map_err(|source| {
            if source.kind() == io::ErrorKind::AlreadyExists {
                ArchiveError::OutputExists {
                    path: output.clone(),
                }
                .into()
            } else {
                fail(source)
            }
        })?;
        Ok(size)
    }
}

impl DirOutput {
    fn stream_blob(&mut self, write: impl FnOnce(&mut dyn Write) -> Result<Blob>) -> Result<Blob> {
        let blobs = self.temp.path().join("blobs/sha256");
        let fail = write_error(&self.output);
        let temp = tempfile::Builder::new()
            .prefix(".partial-")
            .tempfile_in(&blobs)
            .map_err(&fail)?;
        let mut writer = BufWriter::with_capacity(1 << 20, temp.as_file());
        let blob = write(&mut writer)?;
        writer.flush().map_err(&fail)?;
        drop(writer);
        if self.blobs.insert(blob.digest.clone()) {
            temp.persist(blobs.join(hex_of(&blob.digest)))
                .map_err(|err| fail(err.error))?;
        }
        Ok(blob)
    }

    fn finish(self, output: &Path, force: bool, cancel: &AtomicBool) -> Result<u64> {
        let fail = write_error(output);
        let mut size = 0;
        for entry in walkdir::WalkDir::new(self.temp.path()) {
            let entry = entry.map_err(|err| fail(err.into()))?;
            let mode = if entry.file_type().is_dir() {
                0o755
            } else {
                0o644
            };
            let file = crate::error::open_file(entry.path()).map_err(&fail)?;
            file.set_permissions(std::fs::Permissions::from_mode(mode))
                .map_err(&fail)?;
            if entry.file_type().is_file() {
                size += file.metadata().map_err(&fail)?.len();
            }
            file.sync_all().map_err(&fail)?;
        }
        if cancel.load(Ordering::Relaxed) {
            return Err(Error::Interrupted);
        }
        let exists = fs_err::symlink_metadata(output).is_ok();
        if exists && !force {
            return Err(ArchiveError::OutputExists {
                path: output.to_path_buf(),
            }
            .into());
        }
        // A forced replacement moves the old output aside first, so the new one appears in
        // one rename and the old one is removed only then.
        let aside = if exists {
            let parent = self.temp.path().parent().unwrap_or(Path::new("."));
            let aside = tempfile::Builder::new()
                .prefix(".gopack-old-")
                .tempdir_in(parent)
                .map_err(&fail)?
                .keep()
                .join("old");
            fs_err::rename(output, &aside).map_err(&fail)?;
            Some(aside)
        } else {
            None
        };
        let staged = self.temp.keep();
        if let Err(source) = fs_err::rename(&staged, output) {
            let _ = fs_err::remove_dir_all(&staged);
            if let Some(aside) = &aside {
                let _ = fs_err::rename(aside, output);
            }
            return Err(fail(source));
        }
        if let Some(aside) = aside
            && let Some(holder) = aside.parent()
        {
            if aside.is_dir() {
                let _ = fs_err::remove_dir_all(holder);
            } else {
                let _ = fs_err::remove_file(&aside);
                let _ = fs_err::remove_dir(holder);
            }
        }
        Ok(size)
    }
}
