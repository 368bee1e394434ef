//! SCRAM-SHA-1 and SCRAM-SHA-256 (RFC 5802, RFC 7677) as mongod speaks them: the
//! server's side of the two-round `saslStart` / `saslContinue` conversation, and the
//! salted credentials a user is stored with.
//!
//! No password is kept: a user holds, per mechanism, a salt, an iteration count, and
//! `StoredKey = H(HMAC(SaltedPassword, "Client Key"))` and `ServerKey =
//! HMAC(SaltedPassword, "Server Key")`. SCRAM-SHA-256 salts the SASLprep'd password;
//! SCRAM-SHA-1, as mongod, salts the hex MD5 of `user:mongo:password`. Proofs are
//! compared in constant time. Every message is parsed strictly; anything malformed is
//! an error, never a panic.

use base64::Engine as _;
use bson::{doc, Document};
use eddy_codes::{ErrorCode, MongoError};
use hmac::{KeyInit, Mac};
use sha2::Digest;
use subtle::ConstantTimeEq;

/// A SCRAM mechanism.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mechanism {
    Sha1,
    Sha256,
}

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// The longest SCRAM message accepted (a username is at most a few hundred bytes).
const MAX_MESSAGE: usize = 16 * 1024;

impl Mechanism {
    pub const ALL: [Mechanism; 2] = [Mechanism::Sha1, Mechanism::Sha256];

    pub fn name(self) -> &'static str {
        match self {
            Mechanism::Sha1 => "SCRAM-SHA-1",
            Mechanism::Sha256 => "SCRAM-SHA-256",
        }
    }

    pub fn parse(name: &str) -> Option<Mechanism> {
        match name {
            "SCRAM-SHA-1" => Some(Mechanism::Sha1),
            "SCRAM-SHA-256" => Some(Mechanism::Sha256),
            _ => None,
        }
    }

    /// mongod's `scramIterationCount` / `scramSHA256IterationCount` defaults.
    pub fn default_iterations(self) -> u32 {
        match self {
            Mechanism::Sha1 => 10_000,
            Mechanism::Sha256 => 15_000,
        }
    }

    /// The salt length mongod uses.
    fn salt_len(self) -> usize {
        match self {
            Mechanism::Sha1 => 16,
            Mechanism::Sha256 => 28,
        }
    }

    fn hash(self, data: &[u8]) -> Vec<u8> {
        match self {
            Mechanism::Sha1 => sha1::Sha1::digest(data).to_vec(),
            Mechanism::Sha256 => sha2::Sha256::digest(data).to_vec(),
        }
    }

    fn hmac(self, key: &[u8], data: &[u8]) -> Vec<u8> {
        match self {
            Mechanism::Sha1 => {
                let mut m = <hmac::Hmac<sha1::Sha1> as KeyInit>::new_from_slice(key)
                    .expect("HMAC takes keys of any length");
                m.update(data);
                m.finalize().into_bytes().to_vec()
            }
            Mechanism::Sha256 => {
                let mut m = <hmac::Hmac<sha2::Sha256> as KeyInit>::new_from_slice(key)
                    .expect("HMAC takes keys of any length");
                m.update(data);
                m.finalize().into_bytes().to_vec()
            }
        }
    }

    fn salted_password(self, password: &[u8], salt: &[u8], iterations: u32) -> Vec<u8> {
        match self {
            Mechanism::Sha1 => {
                pbkdf2::pbkdf2_hmac_array::<sha1::Sha1, 20>(password, salt, iterations).to_vec()
            }
            Mechanism::Sha256 => {
                pbkdf2::pbkdf2_hmac_array::<sha2::Sha256, 32>(password, salt, iterations).to_vec()
            }
        }
    }

    /// The password as this mechanism salts it.
    fn prepare_password(self, user: &str, password: &str) -> Result<Vec<u8>, MongoError> {
        match self {
            Mechanism::Sha1 => {
                let digest = md5::Md5::digest(format!("{user}:mongo:{password}").as_bytes());
                Ok(hex(&digest).into_bytes())
            }
            Mechanism::Sha256 => match stringprep::saslprep(password) {
                Ok(p) => Ok(p.as_bytes().to_vec()),
                Err(_) => Err(MongoError::bad_value(
                    "Error preparing password: the password contains prohibited characters",
                )),
            },
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Random bytes from the operating system.
fn random(len: usize) -> Result<Vec<u8>, MongoError> {
    let mut buf = vec![0u8; len];
    getrandom::fill(&mut buf).map_err(|e| MongoError::internal(format!("no random bytes: {e}")))?;
    Ok(buf)
}

/// A user's stored credentials for one mechanism.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials {
    pub iterations: u32,
    pub salt: Vec<u8>,
    pub stored_key: Vec<u8>,
    pub server_key: Vec<u8>,
}

impl Credentials {
    /// New credentials for `password`, with a fresh salt.
    pub fn new(mech: Mechanism, user: &str, password: &str) -> Result<Credentials, MongoError> {
        let salt = random(mech.salt_len())?;
        Credentials::derive(mech, user, password, salt, mech.default_iterations())
    }

    pub fn derive(
        mech: Mechanism,
        user: &str,
        password: &str,
        salt: Vec<u8>,
        iterations: u32,
    ) -> Result<Credentials, MongoError> {
        let prepared = mech.prepare_password(user, password)?;
        let salted = mech.salted_password(&prepared, &salt, iterations);
        let client_key = mech.hmac(&salted, b"Client Key");
        Ok(Credentials {
            iterations,
            stored_key: mech.hash(&client_key),
            server_key: mech.hmac(&salted, b"Server Key"),
            salt,
        })
    }

    /// The stored form: `{iterationCount, salt, storedKey, serverKey}` (base64), as mongod.
    pub fn to_document(&self) -> Document {
        doc! {
            "iterationCount": i64::from(self.iterations) as i32,
            "salt": B64.encode(&self.salt),
            "storedKey": B64.encode(&self.stored_key),
            "serverKey": B64.encode(&self.server_key),
        }
    }

    pub fn from_document(d: &Document) -> Option<Credentials> {
        let field = |k: &str| d.get_str(k).ok().and_then(|s| B64.decode(s).ok());
        Some(Credentials {
            iterations: u32::try_from(crate::args::as_integer(d.get("iterationCount")?)?).ok()?,
            salt: field("salt")?,
            stored_key: field("storedKey")?,
            server_key: field("serverKey")?,
        })
    }
}

/// Whether `password` is the one these stored credentials were derived from (a client
/// sending its password itself, as HTTP Basic does, rather than a SCRAM proof).
pub fn password_matches(
    mech: Mechanism,
    user: &str,
    password: &str,
    stored: &Credentials,
) -> Result<bool, MongoError> {
    let derived =
        Credentials::derive(mech, user, password, stored.salt.clone(), stored.iterations)?;
    Ok(bool::from(derived.stored_key.ct_eq(&stored.stored_key)))
}

/// 18 AuthenticationFailed: the one answer to a wrong user, a wrong password or a
/// broken conversation, so that nothing tells them apart.
pub fn failed() -> MongoError {
    MongoError::new(ErrorCode::AuthenticationFailed, "Authentication failed.")
}

/// A malformed SASL message: mongod answers these with 17 ProtocolError.
fn malformed(what: &str) -> MongoError {
    MongoError::new(
        ErrorCode::ProtocolError,
        format!("Incorrect SCRAM client message: {what}"),
    )
}

/// The first client message: `gs2-header client-first-message-bare`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientFirst {
    /// `n,,` or `y,,`: echoed base64-encoded in the final message's `c=`.
    pub gs2_header: String,
    /// `n=user,r=nonce[,extensions]`.
    pub bare: String,
    pub user: String,
    pub nonce: String,
}

impl ClientFirst {
    pub fn parse(payload: &[u8]) -> Result<ClientFirst, MongoError> {
        if payload.len() > MAX_MESSAGE {
            return Err(malformed("message too long"));
        }
        let text = std::str::from_utf8(payload).map_err(|_| malformed("not UTF-8"))?;
        // gs2-header: a channel-binding flag, an optional authzid, then the bare message.
        let mut parts = text.splitn(3, ',');
        let cb = parts.next().unwrap_or_default();
        let authzid = parts.next().ok_or_else(|| malformed("no GS2 header"))?;
        let bare = parts.next().ok_or_else(|| malformed("no GS2 header"))?;
        match cb {
            "n" | "y" => {}
            c if c.starts_with("p=") => {
                return Err(MongoError::bad_value(
                    "Server does not support channel binding",
                ))
            }
            _ => return Err(malformed("bad GS2 channel binding flag")),
        }
        if !authzid.is_empty() && !authzid.starts_with("a=") {
            return Err(malformed("bad GS2 authzid"));
        }
        let mut user = None;
        let mut nonce = None;
        for (i, attr) in bare.split(',').enumerate() {
            match (i, attr.split_once('=')) {
                (0, Some(("n", v))) => user = Some(unescape_user(v)?),
                (1, Some(("r", v))) if !v.is_empty() && v.is_ascii() => nonce = Some(v.to_owned()),
                (0, _) => return Err(malformed("the first attribute must be n=")),
                (1, _) => return Err(malformed("the second attribute must be r=")),
                _ => {}
            }
        }
        let user = user.ok_or_else(|| malformed("no user name"))?;
        if user.is_empty() {
            return Err(malformed("empty user name"));
        }
        Ok(ClientFirst {
            gs2_header: format!("{cb},{authzid},"),
            bare: bare.to_owned(),
            user,
            nonce: nonce.ok_or_else(|| malformed("no nonce"))?,
        })
    }
}

/// `=2C` and `=3D` back to `,` and `=` (RFC 5802 `saslname`).
fn unescape_user(v: &str) -> Result<String, MongoError> {
    let mut out = String::with_capacity(v.len());
    let mut rest = v;
    while let Some(at) = rest.find('=') {
        out.push_str(&rest[..at]);
        let code = rest.get(at..at + 3);
        match code {
            Some("=2C") => out.push(','),
            Some("=3D") => out.push('='),
            _ => return Err(malformed("bad escape in the user name")),
        }
        rest = &rest[at + 3..];
    }
    out.push_str(rest);
    Ok(out)
}

/// One conversation after `saslStart`, waiting for the client's proof.
#[derive(Debug, Clone)]
pub struct Conversation {
    pub mechanism: Mechanism,
    pub user: String,
    pub db: String,
    client_first: ClientFirst,
    server_first: String,
    /// Client nonce + server nonce.
    nonce: String,
    credentials: Credentials,
    /// The client asked to skip the final empty exchange (`options.skipEmptyExchange`).
    pub skip_empty_exchange: bool,
    /// The proof was checked; only the empty exchange is left.
    pub proven: bool,
}

/// What `saslStart` answers: the conversation to continue and the server's message.
#[derive(Debug)]
pub struct Started {
    pub conversation: Conversation,
    pub payload: Vec<u8>,
}

/// Starts a conversation for `first` against the user's stored credentials (`None`
/// when the user does not exist or has none for this mechanism: 18, as for a wrong
/// password).
pub fn start(
    mechanism: Mechanism,
    db: &str,
    first: ClientFirst,
    credentials: Option<Credentials>,
) -> Result<Started, MongoError> {
    let credentials = credentials.ok_or_else(failed)?;
    let nonce = format!("{}{}", first.nonce, B64.encode(random(24)?));
    let server_first = format!(
        "r={nonce},s={},i={}",
        B64.encode(&credentials.salt),
        credentials.iterations
    );
    Ok(Started {
        payload: server_first.clone().into_bytes(),
        conversation: Conversation {
            mechanism,
            user: first.user.clone(),
            db: db.to_owned(),
            client_first: first,
            server_first,
            nonce,
            credentials,
            skip_empty_exchange: false,
            proven: false,
        },
    })
}

impl Conversation {
    /// Checks the client's final message; on success, the server's final message
    /// (`v=ServerSignature`).
    pub fn finish(&self, payload: &[u8]) -> Result<Vec<u8>, MongoError> {
        if payload.len() > MAX_MESSAGE {
            return Err(malformed("message too long"));
        }
        let text = std::str::from_utf8(payload).map_err(|_| malformed("not UTF-8"))?;
        let (without_proof, proof) = text
            .rsplit_once(",p=")
            .ok_or_else(|| malformed("no proof"))?;
        let mut attrs = without_proof.split(',');
        let binding = attrs
            .next()
            .and_then(|a| a.strip_prefix("c="))
            .ok_or_else(|| malformed("the first attribute must be c="))?;
        let nonce = attrs
            .next()
            .and_then(|a| a.strip_prefix("r="))
            .ok_or_else(|| malformed("the second attribute must be r="))?;
        if binding != B64.encode(&self.client_first.gs2_header) {
            return Err(MongoError::bad_value("Unexpected SCRAM channel binding"));
        }
        // A replayed or foreign nonce fails like a wrong password.
        if !bool::from(nonce.as_bytes().ct_eq(self.nonce.as_bytes())) {
            return Err(failed());
        }
        let proof = B64
            .decode(proof)
            .map_err(|_| malformed("the proof is not base64"))?;
        let mech = self.mechanism;
        let auth_message = format!(
            "{},{},{}",
            self.client_first.bare, self.server_first, without_proof
        );
        let signature = mech.hmac(&self.credentials.stored_key, auth_message.as_bytes());
        if proof.len() != signature.len() {
            return Err(failed());
        }
        let client_key: Vec<u8> = proof.iter().zip(&signature).map(|(p, s)| p ^ s).collect();
        if !bool::from(mech.hash(&client_key).ct_eq(&self.credentials.stored_key)) {
            return Err(failed());
        }
        let server_signature = mech.hmac(&self.credentials.server_key, auth_message.as_bytes());
        Ok(format!("v={}", B64.encode(server_signature)).into_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A client's side of the exchange, written from RFC 5802 for the tests.
    fn client_final(
        mech: Mechanism,
        user: &str,
        password: &str,
        first_bare: &str,
        server_first: &str,
    ) -> (String, Vec<u8>) {
        let attrs: Vec<&str> = server_first.split(',').collect();
        let nonce = attrs[0].strip_prefix("r=").expect("r");
        let salt = B64
            .decode(attrs[1].strip_prefix("s=").expect("s"))
            .expect("b64");
        let iterations: u32 = attrs[2]
            .strip_prefix("i=")
            .expect("i")
            .parse()
            .expect("int");
        let prepared = mech.prepare_password(user, password).expect("prep");
        let salted = mech.salted_password(&prepared, &salt, iterations);
        let client_key = mech.hmac(&salted, b"Client Key");
        let stored_key = mech.hash(&client_key);
        let without_proof = format!("c=biws,r={nonce}");
        let auth = format!("{first_bare},{server_first},{without_proof}");
        let signature = mech.hmac(&stored_key, auth.as_bytes());
        let proof: Vec<u8> = client_key
            .iter()
            .zip(&signature)
            .map(|(a, b)| a ^ b)
            .collect();
        let server_key = mech.hmac(&salted, b"Server Key");
        let expected = mech.hmac(&server_key, auth.as_bytes());
        (
            format!("{without_proof},p={}", B64.encode(proof)),
            format!("v={}", B64.encode(expected)).into_bytes(),
        )
    }

    fn exchange(
        mech: Mechanism,
        stored_password: &str,
        sent_password: &str,
    ) -> Result<(), MongoError> {
        let creds = Credentials::new(mech, "user", stored_password)?;
        let first = ClientFirst::parse(b"n,,n=user,r=fyko+d2lbbFgONRv9qkxdawL")?;
        let bare = first.bare.clone();
        let started = start(mech, "admin", first, Some(creds))?;
        let server_first = String::from_utf8(started.payload).expect("utf8");
        assert!(server_first.starts_with("r=fyko+d2lbbFgONRv9qkxdawL"));
        let (fin, expected) = client_final(mech, "user", sent_password, &bare, &server_first);
        let v = started.conversation.finish(fin.as_bytes())?;
        assert_eq!(v, expected);
        Ok(())
    }

    #[test]
    fn both_mechanisms_accept_the_right_password_only() {
        for mech in Mechanism::ALL {
            exchange(mech, "pencil", "pencil").expect("right password");
            assert_eq!(
                exchange(mech, "pencil", "pen")
                    .expect_err("wrong password")
                    .code,
                18
            );
        }
    }

    /// RFC 7677's SCRAM-SHA-256 example: the credentials of `pencil`, salt
    /// `W22ZaJ0SNY7soEsUEjb6gQ==`, 4096 iterations (SASLprep of an ASCII password is the
    /// password itself).
    #[test]
    fn rfc_7677_vector() {
        let salt = B64.decode("W22ZaJ0SNY7soEsUEjb6gQ==").expect("b64");
        let creds =
            Credentials::derive(Mechanism::Sha256, "user", "pencil", salt, 4096).expect("derive");
        let first = ClientFirst::parse(b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO").expect("first");
        let bare = first.bare.clone();
        let conversation = Conversation {
            mechanism: Mechanism::Sha256,
            user: "user".into(),
            db: "admin".into(),
            client_first: first,
            server_first: "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096".into(),
            nonce: "rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0".into(),
            credentials: creds,
            skip_empty_exchange: true,
            proven: false,
        };
        let _ = bare;
        let v = conversation
            .finish(b"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=")
            .expect("the RFC's proof");
        assert_eq!(
            v,
            b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=".to_vec()
        );
    }

    #[test]
    fn malformed_messages_are_errors() {
        for bad in [
            &b""[..],
            b"n,,",
            b"x,,n=u,r=a",
            b"n,,r=a,n=u",
            b"n,,n=u",
            b"n,,n=,r=a",
            b"n,,n=a=2Xb,r=a",
            b"\xff\xfe",
        ] {
            assert!(ClientFirst::parse(bad).is_err(), "{bad:?}");
        }
        assert_eq!(
            ClientFirst::parse(b"n,,n=a=2Cb=3Dc,r=x")
                .expect("escaped")
                .user,
            "a,b=c"
        );
        assert!(ClientFirst::parse(&vec![b'a'; MAX_MESSAGE + 1]).is_err());
        let creds = Credentials::new(Mechanism::Sha256, "u", "p").expect("creds");
        let first = ClientFirst::parse(b"n,,n=u,r=abc").expect("first");
        let started = start(Mechanism::Sha256, "admin", first, Some(creds)).expect("start");
        for bad in [
            &b"c=biws"[..],
            b"c=biws,r=abc,p=zz",
            b"r=x,c=biws,p=AA==",
            b"c=eSws,r=abc,p=AA==",
        ] {
            assert!(started.conversation.finish(bad).is_err(), "{bad:?}");
        }
        // Someone else's nonce: 18, as a wrong password.
        assert_eq!(
            started
                .conversation
                .finish(b"c=biws,r=abcOTHER,p=AAAA")
                .expect_err("nonce")
                .code,
            18
        );
    }

    /// A proof captured from a successful login fails on any later conversation: the
    /// server's nonce differs every time.
    #[test]
    fn a_replayed_proof_is_refused() {
        let mech = Mechanism::Sha256;
        let creds = Credentials::new(mech, "u", "pw").expect("creds");
        let first = || ClientFirst::parse(b"n,,n=u,r=replayednonce").expect("first");
        let bare = first().bare;
        let once = start(mech, "admin", first(), Some(creds.clone())).expect("start");
        let server_first = String::from_utf8(once.payload.clone()).expect("utf8");
        let (fin, _) = client_final(mech, "u", "pw", &bare, &server_first);
        once.conversation
            .finish(fin.as_bytes())
            .expect("the first use");
        let again = start(mech, "admin", first(), Some(creds)).expect("start");
        assert_eq!(
            again
                .conversation
                .finish(fin.as_bytes())
                .expect_err("replayed")
                .code,
            18
        );
    }

    #[test]
    fn credentials_round_trip_through_their_stored_form() {
        let c = Credentials::new(Mechanism::Sha1, "u", "p").expect("creds");
        assert_eq!(Credentials::from_document(&c.to_document()), Some(c));
    }
}
