//! The pairing token: `vigil-pair:1:HOST:PORT:CODE:FINGERPRINT`, its
//! grammar (docs/pairing.md) and its QR code.
//!
//! Owns the grammar; must never depend on the rest of vigilctl (its
//! errors, its connections): vigilctl's error type wraps [`TokenError`],
//! and its gRPC side pairs with a [`Token`], never the other way round.

use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};

/// The prefix of a pairing token: its scheme and version (docs/pairing.md).
pub const TOKEN_PREFIX: &str = "vigil-pair:1:";

/// A parsed pairing token: `vigil-pair:1:HOST:PORT:CODE:FINGERPRINT`, whose
/// grammar is in docs/pairing.md. [`Token::parse`] takes exactly that
/// grammar; [`Token::encode`] writes it, and what it writes parses back to
/// the same token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Token {
    /// Where clients reach the hub (the `https://` authority of its API).
    pub hub: HubAddress,
    /// The one-time code: [`CODE_LEN`] characters of [`CODE_ALPHABET`].
    pub code: String,
    /// SHA-256 of the hub's CA certificate (DER), 64 lowercase hex digits.
    pub ca_sha256: String,
}

/// Why a text is not a pairing token, or an address cannot go in one: each
/// names the rule of docs/pairing.md that it breaks. No message shows the
/// code field.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("it does not begin with vigil-pair:")]
    Scheme,
    #[error("it is a version {0} token, and this vigilctl reads version 1")]
    Version(String),
    #[error("it has whitespace inside (was it copied across a line break?)")]
    Whitespace,
    #[error("it does not have the parts HOST:PORT:CODE:FINGERPRINT after vigil-pair:1:")]
    Parts,
    #[error("{0:?} is not HOST:PORT (an IPv6 address in brackets: [ADDRESS]:PORT)")]
    HostPort(String),
    #[error("the host is empty")]
    EmptyHost,
    #[error("{0} is an IPv6 address without brackets: write it [{0}]:PORT")]
    UnbracketedIpv6(String),
    #[error(
        "{0:?} has a zone id, which names a network interface of one machine: give a host \
         name or a global address"
    )]
    ZoneId(String),
    #[error("[{0}] is not an IPv6 address")]
    Ipv6(String),
    #[error("{0:?} is not an IPv4 address (four numbers 0 to 255, without leading zeros)")]
    Ipv4(String),
    #[error(
        "{0:?} is not a host name (dot-separated labels of 1 to 63 ASCII letters, digits and \
         '-', '-' neither first nor last, a letter in the last label, 253 characters at most)"
    )]
    Name(String),
    #[error("{0} is a wildcard listening address, which no client can connect to")]
    Wildcard(String),
    #[error("the port {0:?} is not a number from 1 to 65535 (without leading zeros)")]
    Port(String),
    #[error("the code is not {CODE_LEN} characters of {CODE_ALPHABET}")]
    Code,
    #[error("the fingerprint is not 64 lowercase hex digits")]
    Fingerprint,
    #[error(
        "the fingerprint is colon-separated: write its 64 hex digits in lowercase, without colons"
    )]
    FingerprintColons,
}

/// The host part of a hub's address.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Host {
    /// A DNS name, kept as written (DNS compares names without case).
    Name(String),
    Ipv4(Ipv4Addr),
    /// Written in brackets, in RFC 5952's form.
    Ipv6(Ipv6Addr),
}

impl fmt::Display for Host {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Host::Name(name) => f.write_str(name),
            Host::Ipv4(a) => write!(f, "{a}"),
            Host::Ipv6(a) => write!(f, "[{a}]"),
        }
    }
}

/// A hub's address as a token carries it, `HOST:PORT`: only addresses a
/// client can connect to (no wildcard, no zone id, no port 0) can be made.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HubAddress {
    host: Host,
    port: u16,
}

impl fmt::Display for HubAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.host, self.port)
    }
}

impl HubAddress {
    pub fn new(host: Host, port: u16) -> Result<HubAddress, TokenError> {
        match &host {
            Host::Name(name) if !is_host_name(name) => return Err(TokenError::Name(name.clone())),
            Host::Ipv4(a) if a.is_unspecified() => return Err(TokenError::Wildcard(a.to_string())),
            Host::Ipv6(a) if a.is_unspecified() => {
                return Err(TokenError::Wildcard(format!("[{a}]")));
            }
            _ => {}
        }
        if port == 0 {
            return Err(TokenError::Port(port.to_string()));
        }
        Ok(HubAddress { host, port })
    }

    /// A listening socket's address; refused if it is a wildcard or has a
    /// zone id.
    pub fn from_socket(addr: SocketAddr) -> Result<HubAddress, TokenError> {
        let host = match addr {
            SocketAddr::V4(a) => Host::Ipv4(*a.ip()),
            SocketAddr::V6(a) if a.scope_id() != 0 => {
                return Err(TokenError::ZoneId(format!("{}%{}", a.ip(), a.scope_id())));
            }
            SocketAddr::V6(a) => Host::Ipv6(*a.ip()),
        };
        HubAddress::new(host, addr.port())
    }

    /// `HOST:PORT` as in a token (the grammar's `hub`).
    pub fn parse(text: &str) -> Result<HubAddress, TokenError> {
        let host_port = || TokenError::HostPort(text.to_owned());
        let (host, port) = match text.strip_prefix('[') {
            Some(rest) => {
                let (inside, after) = rest.split_once(']').ok_or_else(host_port)?;
                let port = after.strip_prefix(':').ok_or_else(host_port)?;
                (parse_ipv6(inside)?, port)
            }
            None => {
                let (host, port) = text.rsplit_once(':').ok_or_else(host_port)?;
                if host.contains(':') {
                    // Which colon ends an unbracketed address is a guess.
                    let ipv6 = [host, text]
                        .into_iter()
                        .find(|t| t.parse::<Ipv6Addr>().is_ok());
                    return Err(ipv6.map_or_else(host_port, |address| {
                        TokenError::UnbracketedIpv6(address.to_owned())
                    }));
                }
                (parse_host(host)?, port)
            }
        };
        HubAddress::new(host, parse_port(port)?)
    }

    pub fn host(&self) -> &Host {
        &self.host
    }

    pub fn port(&self) -> u16 {
        self.port
    }
}

/// The inside of `[...]`: an RFC 3986 `IPv6address`, without a zone id.
fn parse_ipv6(text: &str) -> Result<Host, TokenError> {
    if text.contains('%') {
        return Err(TokenError::ZoneId(format!("[{text}]")));
    }
    text.parse()
        .map(Host::Ipv6)
        .map_err(|_| TokenError::Ipv6(text.to_owned()))
}

/// A host not in brackets: all digits and dots is an IPv4 address (or
/// nothing), anything else a name.
fn parse_host(text: &str) -> Result<Host, TokenError> {
    if text.is_empty() {
        return Err(TokenError::EmptyHost);
    }
    if text.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        // std refuses leading zeros, as RFC 3986's dec-octet.
        return text
            .parse()
            .map(Host::Ipv4)
            .map_err(|_| TokenError::Ipv4(text.to_owned()));
    }
    Ok(Host::Name(text.to_owned()))
}

/// RFC 1123 host names whose last label has a letter (so that no name
/// looks like an IPv4 address), without a final dot.
fn is_host_name(name: &str) -> bool {
    let label_ok = |l: &str| {
        (1..=63).contains(&l.len())
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    name.len() <= 253
        && name.split('.').all(label_ok)
        && name
            .rsplit('.')
            .next()
            .is_some_and(|last| last.bytes().any(|b| b.is_ascii_alphabetic()))
}

/// 1 to 65535 in decimal, without a sign or leading zeros.
fn parse_port(text: &str) -> Result<u16, TokenError> {
    let bad = || TokenError::Port(text.to_owned());
    if text.is_empty() || text.starts_with('0') || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    text.parse().map_err(|_| bad())
}

/// The characters of a pairing code (the hub's `Pki::create_code`).
pub const CODE_ALPHABET: &str = "23456789abcdefghjkmnpqrstuvwxyz";
/// The length of a pairing code.
pub const CODE_LEN: usize = 12;

/// The scheme, which [`TOKEN_PREFIX`] follows with the version.
const SCHEME: &str = "vigil-pair:";

/// Whether `text` ends in a colon-separated SHA-256 (`AB:CD:...`, as
/// `openssl x509 -fingerprint` prints it).
fn ends_in_colon_separated_sha256(text: &str) -> bool {
    const LEN: usize = 32 * 3 - 1;
    let b = text.as_bytes();
    b.len() >= LEN
        && b[b.len() - LEN..].iter().enumerate().all(|(i, c)| {
            if i % 3 == 2 {
                *c == b':'
            } else {
                c.is_ascii_hexdigit()
            }
        })
}

impl Token {
    /// A token of `hub`, `code` and `ca_sha256`, if they fit the grammar.
    pub fn new(hub: HubAddress, code: &str, ca_sha256: &str) -> Result<Token, TokenError> {
        let code_ok =
            code.len() == CODE_LEN && code.bytes().all(|b| CODE_ALPHABET.as_bytes().contains(&b));
        if !code_ok {
            return Err(TokenError::Code);
        }
        if ends_in_colon_separated_sha256(ca_sha256) {
            return Err(TokenError::FingerprintColons);
        }
        let fingerprint_ok = ca_sha256.len() == 64
            && ca_sha256
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        if !fingerprint_ok {
            return Err(TokenError::Fingerprint);
        }
        Ok(Token {
            hub,
            code: code.to_owned(),
            ca_sha256: ca_sha256.to_owned(),
        })
    }

    pub fn encode(&self) -> String {
        format!(
            "{TOKEN_PREFIX}{}:{}:{}",
            self.hub, self.code, self.ca_sha256
        )
    }

    /// Parses `text` by the grammar of docs/pairing.md: ASCII whitespace
    /// around it is ignored, nothing else is forgiven.
    pub fn parse(text: &str) -> Result<Token, TokenError> {
        let text = text.trim_matches(|c: char| c.is_ascii_whitespace());
        if text.contains(char::is_whitespace) {
            return Err(TokenError::Whitespace);
        }
        let rest = text.strip_prefix(SCHEME).ok_or(TokenError::Scheme)?;
        let (version, rest) = rest.split_once(':').ok_or(TokenError::Parts)?;
        if version != "1" {
            let numeric = !version.is_empty() && version.bytes().all(|b| b.is_ascii_digit());
            return Err(if numeric {
                TokenError::Version(version.to_owned())
            } else {
                TokenError::Parts
            });
        }
        if ends_in_colon_separated_sha256(rest) {
            return Err(TokenError::FingerprintColons);
        }
        // The code and the fingerprint hold no colon; the hub part may (an
        // IPv6 address in brackets): split from the right.
        let mut parts = rest.rsplitn(3, ':');
        let (Some(ca_sha256), Some(code), Some(hub)) = (parts.next(), parts.next(), parts.next())
        else {
            return Err(TokenError::Parts);
        };
        // HOST:PORT has one colon outside brackets: with none, or more
        // (and no unbracketed IPv6 to blame), a part is missing or extra;
        // said so rather than naming a part that may be the code.
        let outside = match hub.strip_prefix('[') {
            Some(rest) => rest.split_once(']').map_or("", |(_, after)| after),
            None => hub,
        };
        match outside.matches(':').count() {
            0 => return Err(TokenError::Parts),
            1 => {}
            _ => {
                return Err(match HubAddress::parse(hub) {
                    Err(e @ TokenError::UnbracketedIpv6(_)) => e,
                    _ => TokenError::Parts,
                });
            }
        }
        Token::new(HubAddress::parse(hub)?, code, ca_sha256)
    }
}

/// The terminal rendering of a QR code of `text`.
pub fn qr(text: &str) -> Option<String> {
    let bits = qr_bits(text)?;
    let code = qrcode::QrCode::with_bits(bits, QR_EC_LEVEL).ok()?;
    Some(
        code.render::<qrcode::render::unicode::Dense1x2>()
            .quiet_zone(true)
            .build(),
    )
}

/// A QR code's error correction (M: 15% of the code may be lost).
const QR_EC_LEVEL: qrcode::EcLevel = qrcode::EcLevel::M;

/// `text` as one byte-mode segment (docs/pairing.md: the token is the QR
/// payload as it is), in the smallest version it fits.
fn qr_bits(text: &str) -> Option<qrcode::bits::Bits> {
    (1..=40).find_map(|version| {
        let mut bits = qrcode::bits::Bits::new(qrcode::Version::Normal(version));
        bits.push_byte_data(text.as_bytes()).ok()?;
        bits.push_terminator(QR_EC_LEVEL).ok()?;
        Some(bits)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    // The worked examples' (docs/pairing.md).
    const FINGERPRINT: &str = "a465c9a6ba3a45414416056f75b4e8751a541cde40a9fa95378f9557d4c85489";
    const CODE: &str = "k7m3q9x2bd4h";

    fn token(host: Host, port: u16) -> Token {
        let hub = HubAddress::new(host, port).expect("a valid address");
        Token::new(hub, CODE, FINGERPRINT).expect("a valid token")
    }

    fn name(n: &str) -> Host {
        Host::Name(n.to_owned())
    }

    fn v6(a: &str) -> Host {
        Host::Ipv6(a.parse().expect("an IPv6 address"))
    }

    /// Format, then parse: the same token, by name, IPv4 and IPv6; the
    /// text is as docs/pairing.md's grammar has it (its worked examples
    /// among them).
    #[test]
    fn tokens_round_trip_by_name_ipv4_and_ipv6() {
        let cases = [
            (name("vigil.home.arpa"), 7443, "vigil.home.arpa:7443"),
            (name("vigil-hub.example"), 7443, "vigil-hub.example:7443"),
            (name("vigil"), 7443, "vigil:7443"),
            (name("Vigil-Hub.LAN"), 1, "Vigil-Hub.LAN:1"),
            (
                name("xn--vgil-hub-9za.example"),
                65535,
                "xn--vgil-hub-9za.example:65535",
            ),
            (name("1st.example"), 7443, "1st.example:7443"),
            (name("4vigil"), 7443, "4vigil:7443"),
            (name("a-1"), 7443, "a-1:7443"),
            (
                name(&"a".repeat(63)),
                7443,
                &format!("{}:7443", "a".repeat(63)),
            ),
            (
                Host::Ipv4(Ipv4Addr::new(192, 168, 1, 20)),
                7443,
                "192.168.1.20:7443",
            ),
            (Host::Ipv4(Ipv4Addr::LOCALHOST), 7443, "127.0.0.1:7443"),
            (
                Host::Ipv4(Ipv4Addr::new(10, 0, 0, 255)),
                443,
                "10.0.0.255:443",
            ),
            (v6("::1"), 7443, "[::1]:7443"),
            (v6("fd00::20"), 7443, "[fd00::20]:7443"),
            (
                v6("2001:db8:85a3:8d3:1319:8a2e:370:7348"),
                7443,
                "[2001:db8:85a3:8d3:1319:8a2e:370:7348]:7443",
            ),
            (
                v6("2001:0DB8:0000:0000:0000:0000:0000:0001"),
                7443,
                "[2001:db8::1]:7443",
            ),
            (v6("fe80::1"), 7443, "[fe80::1]:7443"),
            (v6("::ffff:192.0.2.1"), 7443, "[::ffff:192.0.2.1]:7443"),
        ];
        for (host, port, hub) in cases {
            let t = token(host, port);
            let text = t.encode();
            assert_eq!(text, format!("vigil-pair:1:{hub}:{CODE}:{FINGERPRINT}"));
            assert_eq!(Token::parse(&text).expect(&text), t, "{text}");
            assert_eq!(HubAddress::parse(hub).as_ref(), Ok(&t.hub), "{hub}");
        }
    }

    /// Other spellings the grammar allows: they parse to the token whose
    /// encoding is the canonical one.
    #[test]
    fn other_spellings_parse_to_the_canonical_token() {
        let cases = [
            ("[2001:DB8:0:0:0:0:0:1]:7443", "[2001:db8::1]:7443"),
            ("[0:0:0:0:0:0:0:1]:7443", "[::1]:7443"),
            ("[FD00::0001]:7443", "[fd00::1]:7443"),
            ("[::FFFF:192.0.2.1]:7443", "[::ffff:192.0.2.1]:7443"),
        ];
        for (written, canonical) in cases {
            let text = format!("vigil-pair:1:{written}:{CODE}:{FINGERPRINT}");
            let t = Token::parse(&text).expect(&text);
            assert_eq!(t.hub.to_string(), canonical, "{text}");
            assert_eq!(Token::parse(&t.encode()).expect("re-encoded"), t);
        }
        // ASCII whitespace around the token is ignored.
        let t = token(name("vigil"), 7443);
        for text in [
            format!("  {}\n", t.encode()),
            format!("\t{}\r\n", t.encode()),
        ] {
            assert_eq!(Token::parse(&text).expect("whitespace around"), t);
        }
    }

    /// Each malformed token is refused, for the reason given.
    #[test]
    fn malformed_tokens_are_refused_with_the_reason() {
        use TokenError as E;
        let fp = FINGERPRINT;
        let with_hub = |hub: &str| format!("vigil-pair:1:{hub}:{CODE}:{fp}");
        let with_code = |code: &str| format!("vigil-pair:1:vigil:7443:{code}:{fp}");
        let with_fp = |fp: &str| format!("vigil-pair:1:vigil:7443:{CODE}:{fp}");
        let colons = (0..32)
            .map(|i| &fp[2 * i..2 * i + 2])
            .collect::<Vec<_>>()
            .join(":");
        let cases: Vec<(String, TokenError)> = vec![
            // The scheme, the version, the parts.
            ("hello".into(), E::Scheme),
            (String::new(), E::Scheme),
            (with_hub("vigil:7443").to_uppercase(), E::Scheme),
            (format!("vigil-pair://vigil:7443:{CODE}:{fp}"), E::Parts),
            (
                format!("vigil-pair:2:vigil:7443:{CODE}:{fp}"),
                E::Version("2".into()),
            ),
            (
                format!("vigil-pair:01:vigil:7443:{CODE}:{fp}"),
                E::Version("01".into()),
            ),
            ("vigil-pair:1".into(), E::Parts),
            ("vigil-pair:1:".into(), E::Parts),
            (format!("vigil-pair:1:{CODE}:{fp}"), E::Parts),
            (format!("vigil-pair:1:vigil:{CODE}:{fp}"), E::Parts),
            (format!("vigil-pair:1:vigil:7443:{fp}"), E::Parts),
            (
                format!("vigil-pair:1:vigil:7443:{CODE}:{fp}:extra"),
                E::Parts,
            ),
            (
                format!("vigil-pair:1:[::1]:7443:{CODE}:{fp}:extra"),
                E::Parts,
            ),
            (
                format!("vigil-pair:1:vigil:7443:{CODE}:{CODE}:{fp}"),
                E::Parts,
            ),
            (
                format!("vigil-pair:1:vigil:7443:{CODE}\n:{fp}"),
                E::Whitespace,
            ),
            (
                format!("vigil-pair:1: vigil:7443:{CODE}:{fp}"),
                E::Whitespace,
            ),
            (format!("\u{a0}{}", with_hub("vigil:7443")), E::Whitespace),
            // Hosts.
            (with_hub(":7443"), E::EmptyHost),
            (
                with_hub("fd00::1:7443"),
                E::UnbracketedIpv6("fd00::1".into()),
            ),
            (with_hub("::1:7443"), E::UnbracketedIpv6("::1".into())),
            (
                with_hub("2001:db8:85a3:8d3:1319:8a2e:370:7348:7443"),
                E::UnbracketedIpv6("2001:db8:85a3:8d3:1319:8a2e:370:7348".into()),
            ),
            (
                with_hub("[fe80::1%eth0]:7443"),
                E::ZoneId("[fe80::1%eth0]".into()),
            ),
            (
                with_hub("[fe80::1%25eth0]:7443"),
                E::ZoneId("[fe80::1%25eth0]".into()),
            ),
            (with_hub("[fd00::1]"), E::Parts),
            (with_hub("[fd00::1"), E::Parts),
            (with_hub("[fd00::1]7443"), E::Parts),
            (
                with_hub("[fd00::1]x:7443"),
                E::HostPort("[fd00::1]x:7443".into()),
            ),
            (
                with_hub("[192.168.1.20]:7443"),
                E::Ipv6("192.168.1.20".into()),
            ),
            (with_hub("[fd00::1::2]:7443"), E::Ipv6("fd00::1::2".into())),
            (with_hub("[v1.fe]:7443"), E::Ipv6("v1.fe".into())),
            (with_hub("[]:7443"), E::Ipv6(String::new())),
            (with_hub("[vigil]:7443"), E::Ipv6("vigil".into())),
            (
                with_hub("192.168.1.256:7443"),
                E::Ipv4("192.168.1.256".into()),
            ),
            (
                with_hub("192.168.01.20:7443"),
                E::Ipv4("192.168.01.20".into()),
            ),
            (with_hub("192.168.1:7443"), E::Ipv4("192.168.1".into())),
            (with_hub("3232235796:7443"), E::Ipv4("3232235796".into())),
            (
                with_hub("192.168.1.20.:7443"),
                E::Ipv4("192.168.1.20.".into()),
            ),
            (with_hub("0.0.0.0:7443"), E::Wildcard("0.0.0.0".into())),
            (with_hub("[::]:7443"), E::Wildcard("[::]".into())),
            (
                with_hub("vigil.local.:7443"),
                E::Name("vigil.local.".into()),
            ),
            (
                with_hub("vigil..local:7443"),
                E::Name("vigil..local".into()),
            ),
            (with_hub("-vigil:7443"), E::Name("-vigil".into())),
            (with_hub("vigil-:7443"), E::Name("vigil-".into())),
            (with_hub("vigil_hub:7443"), E::Name("vigil_hub".into())),
            (with_hub("vigil.123:7443"), E::Name("vigil.123".into())),
            (with_hub("0x7f.1:7443"), E::Name("0x7f.1".into())),
            (with_hub("vigil.1-2:7443"), E::Name("vigil.1-2".into())),
            (with_hub("1-2:7443"), E::Name("1-2".into())),
            (with_hub("vïgil:7443"), E::Name("vïgil".into())),
            (with_hub("user@vigil:7443"), E::Name("user@vigil".into())),
            (with_hub("vigil/x:7443"), E::Name("vigil/x".into())),
            (
                with_hub(&format!("{}:7443", "a".repeat(64))),
                E::Name("a".repeat(64)),
            ),
            (
                with_hub(&format!("{}.b:7443", vec!["a".repeat(63); 4].join("."))),
                E::Name(format!("{}.b", vec!["a".repeat(63); 4].join("."))),
            ),
            // Ports.
            (with_hub("vigil:0"), E::Port("0".into())),
            (with_hub("vigil:65536"), E::Port("65536".into())),
            (with_hub("vigil:99999"), E::Port("99999".into())),
            (with_hub("vigil:07443"), E::Port("07443".into())),
            (with_hub("vigil:+7443"), E::Port("+7443".into())),
            (with_hub("vigil:-1"), E::Port("-1".into())),
            (with_hub("vigil:74a3"), E::Port("74a3".into())),
            (with_hub("vigil:"), E::Port(String::new())),
            (with_hub("[::1]:"), E::Port(String::new())),
            // Codes: length, alphabet, case.
            (with_code("k7m3q9x2bd4"), E::Code),
            (with_code("k7m3q9x2bd4hh"), E::Code),
            (with_code(""), E::Code),
            (with_code("K7M3Q9X2BD4H"), E::Code),
            (with_code("k7m3q9x2bd4i"), E::Code),
            (with_code("k7m3q9x2bd4l"), E::Code),
            (with_code("k7m3q9x2bd4o"), E::Code),
            (with_code("k7m3q9x2bd40"), E::Code),
            (with_code("k7m3q9x2bd41"), E::Code),
            (with_code("k7m3q9x2bd4-"), E::Code),
            (with_code("k7m3q9x2bd4é"), E::Code),
            // Fingerprints: 64 lowercase hex digits, nothing else.
            (with_fp(&fp[..63]), E::Fingerprint),
            (with_fp(&format!("{fp}0")), E::Fingerprint),
            (with_fp(""), E::Fingerprint),
            (with_fp(&fp.to_uppercase()), E::Fingerprint),
            (with_fp(&format!("{}g", &fp[..63])), E::Fingerprint),
            (with_fp(&"0".repeat(40)), E::Fingerprint),
            (with_fp(&colons), E::FingerprintColons),
            (with_fp(&colons.to_uppercase()), E::FingerprintColons),
        ];
        for (text, want) in cases {
            match Token::parse(&text) {
                Err(got) => assert_eq!(got, want, "{text:?}"),
                other => panic!("{text:?}: {other:?}"),
            }
        }
    }

    /// The reason is in the message, and the code is not.
    #[test]
    fn a_refusal_says_why_without_the_code() {
        let text = format!("vigil-pair:1:fd00::1:7443:{CODE}:{FINGERPRINT}");
        let message = Token::parse(&text).expect_err("unbracketed").to_string();
        assert!(message.contains("[fd00::1]:PORT"), "{message}");
        assert!(!message.contains(CODE), "{message}");
        let bad_code = format!(
            "vigil-pair:1:vigil:7443:{}:{FINGERPRINT}",
            CODE.to_uppercase()
        );
        let message = Token::parse(&bad_code).expect_err("capitals").to_string();
        assert!(message.contains(CODE_ALPHABET), "{message}");
        assert!(!message.contains(&CODE.to_uppercase()), "{message}");
    }

    /// Only addresses a client can connect to go in a token.
    #[test]
    fn addresses_a_client_cannot_connect_to_are_refused() {
        let v4 = |s: &str| s.parse::<SocketAddr>().expect("a socket address");
        assert_eq!(
            HubAddress::from_socket(v4("192.0.2.7:7443")).map(|a| a.to_string()),
            Ok("192.0.2.7:7443".to_owned())
        );
        assert_eq!(
            HubAddress::from_socket(v4("[fd00::7]:7443")).map(|a| a.to_string()),
            Ok("[fd00::7]:7443".to_owned())
        );
        assert_eq!(
            HubAddress::from_socket(v4("[::]:7443")),
            Err(TokenError::Wildcard("[::]".into()))
        );
        assert_eq!(
            HubAddress::from_socket(v4("0.0.0.0:7443")),
            Err(TokenError::Wildcard("0.0.0.0".into()))
        );
        assert_eq!(
            HubAddress::from_socket(v4("[fe80::1%2]:7443")),
            Err(TokenError::ZoneId("fe80::1%2".into()))
        );
        assert_eq!(
            HubAddress::new(Host::Ipv4(Ipv4Addr::LOCALHOST), 0),
            Err(TokenError::Port("0".into()))
        );
        // --address is the grammar's HOST:PORT.
        assert_eq!(
            HubAddress::parse("vigil"),
            Err(TokenError::HostPort("vigil".into()))
        );
        assert_eq!(
            HubAddress::parse("[fd00::1]"),
            Err(TokenError::HostPort("[fd00::1]".into()))
        );
        assert_eq!(
            HubAddress::parse("fd00::1"),
            Err(TokenError::UnbracketedIpv6("fd00::1".into()))
        );
        assert_eq!(
            HubAddress::parse("[fd00::1]:7443").map(|a| a.host().clone()),
            Ok(v6("fd00::1"))
        );
        // A name that looks like an IPv4 address is not a name.
        assert_eq!(
            HubAddress::new(name("192.0.2.7"), 7443),
            Err(TokenError::Name("192.0.2.7".into()))
        );
        let hub = HubAddress::new(name("vigil"), 7443).expect("a name");
        assert_eq!(
            Token::new(hub.clone(), CODE, FINGERPRINT).map(|_| ()),
            Ok(())
        );
        assert_eq!(
            Token::new(hub.clone(), "short", FINGERPRINT),
            Err(TokenError::Code)
        );
        assert_eq!(
            Token::new(hub, CODE, &FINGERPRINT.to_uppercase()),
            Err(TokenError::Fingerprint)
        );
    }

    /// The QR code's payload is the token as one byte-mode segment, and
    /// the longest token (a 253-character name) fits.
    #[test]
    fn the_qr_payload_is_the_token_in_byte_mode() {
        let longest = format!("{}.b", vec!["a".repeat(63); 3].join("."));
        let longest = format!("{}.{}", "c".repeat(253 - longest.len() - 1), longest);
        assert_eq!(longest.len(), 253);
        for host in [name(&longest), v6("2001:db8:85a3:8d3:1319:8a2e:370:7348")] {
            let text = token(host, 65535).encode();
            let bits = qr_bits(&text).expect("fits a QR code").into_bytes();
            assert_eq!(bits[0] >> 4, 0b0100, "byte mode");
            assert!(qr(&text).is_some());
        }
    }
}
