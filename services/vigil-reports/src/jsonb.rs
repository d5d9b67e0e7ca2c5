//! A writer of SQLite's binary JSON (JSONB), for handing a whole batch of
//! rows to one statement (`jsonb_each(?1)`) with nothing for SQLite to parse.
//!
//! The format is SQLite's own, documented as stable at
//! <https://sqlite.org/jsonb.html>: every element is a header and a payload.
//! The header's low four bits are the element type; its high four bits are
//! the payload size (0 to 11), or say that the size follows in the next 1,
//! 2, 4 or 8 bytes, big-endian (12, 13, 14, 15). This writer emits only
//! what the indexer needs: null, integers, raw text and arrays.

/// Element types (the header's low four bits).
const NULL: u8 = 0;
/// An integer as its decimal digits in ASCII.
const INT: u8 = 3;
/// Text taken as is: SQLite escapes it if it ever renders it as JSON.
const TEXT_RAW: u8 = 10;
const ARRAY: u8 = 11;

/// An array being written; its elements are appended in order.
#[derive(Debug, Default)]
pub(crate) struct Array {
    body: Vec<u8>,
}

impl Array {
    pub(crate) fn with_capacity(bytes: usize) -> Array {
        Array {
            body: Vec::with_capacity(bytes),
        }
    }

    pub(crate) fn null(&mut self) {
        self.body.push(NULL);
    }

    pub(crate) fn int(&mut self, value: i64) {
        let mut digits = itoa::Buffer::new();
        self.element(INT, digits.format(value).as_bytes());
    }

    pub(crate) fn text(&mut self, value: &str) {
        self.element(TEXT_RAW, value.as_bytes());
    }

    pub(crate) fn opt_text(&mut self, value: Option<&str>) {
        match value {
            Some(text) => self.text(text),
            None => self.null(),
        }
    }

    /// Appends `inner` as an element of this array.
    pub(crate) fn array(&mut self, inner: &Array) {
        self.element(ARRAY, &inner.body);
    }

    /// Empties the array, keeping its memory (for one row after another).
    pub(crate) fn clear(&mut self) {
        self.body.clear();
    }

    /// The whole array as one JSONB value.
    pub(crate) fn finish(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.body.len() + 9);
        header(&mut out, ARRAY, self.body.len());
        out.extend_from_slice(&self.body);
        out
    }

    fn element(&mut self, kind: u8, payload: &[u8]) {
        header(&mut self.body, kind, payload.len());
        self.body.extend_from_slice(payload);
    }
}

fn header(out: &mut Vec<u8>, kind: u8, size: usize) {
    // The smallest header that holds the size: SQLite accepts any, but
    // this is the canonical form it writes itself.
    match size {
        0..=11 => out.push(((size as u8) << 4) | kind),
        12..=0xff => out.extend_from_slice(&[0xc0 | kind, size as u8]),
        0x100..=0xffff => {
            out.push(0xd0 | kind);
            out.extend_from_slice(&(size as u16).to_be_bytes());
        }
        _ => match u32::try_from(size) {
            Ok(size) => {
                out.push(0xe0 | kind);
                out.extend_from_slice(&size.to_be_bytes());
            }
            Err(_) => {
                out.push(0xf0 | kind);
                out.extend_from_slice(&(size as u64).to_be_bytes());
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_use_the_smallest_size_field() {
        let mut out = Vec::new();
        header(&mut out, TEXT_RAW, 11);
        assert_eq!(out, [0xba]);
        out.clear();
        header(&mut out, TEXT_RAW, 12);
        assert_eq!(out, [0xca, 12]);
        out.clear();
        header(&mut out, ARRAY, 300);
        assert_eq!(out, [0xdb, 1, 44]);
        out.clear();
        header(&mut out, ARRAY, 70_000);
        assert_eq!(out, [0xeb, 0, 1, 0x11, 0x70]);
    }

    #[test]
    fn writes_what_sqlite_reads() {
        // SQLite itself (the same library sqlx links) renders our bytes as
        // JSON text: every type and every header size we emit.
        let long = "x".repeat(300);
        let mut row = Array::default();
        row.int(-42);
        row.int(i64::MAX);
        row.text("a \"quoted\"\nline");
        row.opt_text(None);
        row.text("");
        row.text(&long);
        let mut outer = Array::default();
        outer.array(&row);
        outer.array(&Array::default());
        let blob = outer.finish();

        let conn = rusqlite::Connection::open_in_memory().expect("sqlite");
        let (valid, text): (i64, String) = conn
            .query_row("SELECT json_valid(?1, 8), json(?1)", [&blob], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .expect("json()");
        assert_eq!(valid, 1, "SQLite accepts the blob as JSONB");
        let expected =
            serde_json::json!([[-42, i64::MAX, "a \"quoted\"\nline", null, "", long], []]);
        assert_eq!(
            serde_json::from_str::<serde_json::Value>(&text).expect("json"),
            expected
        );
    }
}
