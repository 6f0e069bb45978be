#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::*;

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn b64url(bytes: &[u8]) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n =
            chunk.iter().fold(0u32, |acc, b| (acc << 8) | u32::from(*b)) << (8 * (3 - chunk.len()));
        for i in 0..=chunk.len() {
            out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
        }
    }
    out
}

struct Fixture {
    _dir: tempfile::TempDir,
    issuer: LocalIssuer,
    verifier: Verifier,
}

fn policy() -> TokenPolicy {
    TokenPolicy {
        issuer: LOCAL_ISSUER.into(),
        audience: DEFAULT_AUDIENCE.into(),
        leeway_seconds: LEEWAY_SECONDS,
    }
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let (issuer, created) = LocalIssuer::load_or_create(&dir.path().join("auth")).unwrap();
    assert!(created);
    let verifier = Verifier::from_jwks(&issuer.jwks(), policy(), Bindings::embedded()).unwrap();
    Fixture {
        _dir: dir,
        issuer,
        verifier,
    }
}

fn request(roles: &[Role], org: Option<&str>) -> MintRequest {
    MintRequest {
        client_id: "test-ehr".into(),
        roles: roles.to_vec(),
        org_number: org.map(str::to_string),
        audience: DEFAULT_AUDIENCE.into(),
        ttl_seconds: 600,
        now_unix: now(),
    }
}

#[test]
fn a_minted_ingest_token_names_its_municipality_and_role() {
    let f = fixture();
    let token = f
        .issuer
        .mint(&request(&[Role::Ingest], Some("958935420")))
        .unwrap();
    let caller = f.verifier.verify(&token).unwrap();
    assert_eq!(caller.client_id, "test-ehr");
    assert_eq!(
        caller.municipality.map(|m| m.to_string()),
        Some("0301".into())
    );
    assert!(caller.has(Role::Ingest) && !caller.has(Role::Operator));
    assert!(matches!(
        caller.require(Role::Operator),
        Err(AuthError::MissingRole {
            role: Role::Operator,
            ..
        })
    ));
}

#[test]
fn the_key_file_is_private_and_reloads_to_the_same_key() {
    use std::os::unix::fs::PermissionsExt;
    let f = fixture();
    let dir = f._dir.path().join("auth");
    let mode = std::fs::metadata(dir.join("issuer-es256.p8"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    let (again, created) = LocalIssuer::load_or_create(&dir).unwrap();
    assert!(!created);
    assert_eq!(again.kid(), f.issuer.kid());
    std::fs::set_permissions(
        dir.join("issuer-es256.p8"),
        std::fs::Permissions::from_mode(0o644),
    )
    .unwrap();
    assert!(LocalIssuer::load(&dir).is_err());
}

#[test]
fn wrong_audience_issuer_expiry_and_future_tokens_are_refused() {
    let f = fixture();
    let mut r = request(&[Role::Ingest], Some("958935420"));
    r.audience = "someone-else".into();
    assert_eq!(
        f.verifier.verify(&f.issuer.mint(&r).unwrap()),
        Err(AuthError::Audience)
    );

    let mut r = request(&[Role::Ingest], None);
    r.now_unix = now() - 7200;
    r.ttl_seconds = 3600;
    assert_eq!(
        f.verifier.verify(&f.issuer.mint(&r).unwrap()),
        Err(AuthError::Expired)
    );

    let mut r = request(&[Role::Ingest], None);
    r.now_unix = now() + 3600;
    assert_eq!(
        f.verifier.verify(&f.issuer.mint(&r).unwrap()),
        Err(AuthError::NotYetValid)
    );

    let other_issuer = Verifier::from_jwks(
        &f.issuer.jwks(),
        TokenPolicy {
            issuer: "https://helseid-sts.nhn.no".into(),
            ..policy()
        },
        Bindings::embedded(),
    )
    .unwrap();
    let token = f.issuer.mint(&request(&[Role::Ingest], None)).unwrap();
    assert_eq!(other_issuer.verify(&token), Err(AuthError::Issuer));
}

#[test]
fn none_hmac_key_confusion_and_foreign_keys_are_refused() {
    let f = fixture();
    let good = f.issuer.mint(&request(&[Role::Operator], None)).unwrap();
    let payload = good.split('.').nth(1).unwrap();

    // alg none, no signature.
    let none = format!("{}.{payload}.", b64url(br#"{"alg":"none","typ":"JWT"}"#));
    let refused = f.verifier.verify(&none);
    assert!(
        matches!(&refused, Err(AuthError::Algorithm(a)) if a == "none"),
        "{refused:?}"
    );

    // HMAC with a secret, and HMAC with the public key as the secret (key confusion).
    let claims: serde_json::Value =
        jsonwebtoken::dangerous::insecure_decode::<serde_json::Value>(&good)
            .unwrap()
            .claims;
    let public = serde_json::to_vec(&f.issuer.jwks()).unwrap();
    for secret in [&b"secret"[..], &public[..]] {
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
        header.kid = Some(f.issuer.kid().to_string());
        header.typ = Some("at+jwt".into());
        let token = jsonwebtoken::encode(
            &header,
            &claims,
            &jsonwebtoken::EncodingKey::from_secret(secret).unwrap(),
        )
        .unwrap();
        assert!(matches!(
            f.verifier.verify(&token),
            Err(AuthError::Algorithm(_))
        ));
    }

    // A well-formed token from another key pair with the same kid claimed.
    let other = tempfile::tempdir().unwrap();
    let (foreign, _) = LocalIssuer::load_or_create(other.path()).unwrap();
    let token = foreign.mint(&request(&[Role::Operator], None)).unwrap();
    assert!(matches!(
        f.verifier.verify(&token),
        Err(AuthError::UnknownKey(_))
    ));

    // A changed payload under the original signature.
    let parts: Vec<&str> = good.split('.').collect();
    let forged = format!(
        "{}.{}.{}",
        parts[0],
        b64url(br#"{"iss":"urn:kpr:local-issuer","aud":"kpr","client_id":"x","scope":"kpr:operator","exp":99999999999}"#),
        parts[2]
    );
    assert_eq!(f.verifier.verify(&forged), Err(AuthError::Signature));
}

#[test]
fn a_string_exp_is_refused_not_ignored() {
    // CVE-2026-25537: a claim of the wrong type must not count as absent.
    let f = fixture();
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256);
    header.typ = Some("at+jwt".into());
    header.kid = Some(f.issuer.kid().to_string());
    let claims = serde_json::json!({
        "iss": LOCAL_ISSUER, "aud": DEFAULT_AUDIENCE, "client_id": "x",
        "scope": "kpr:operator", "exp": "99999999999", "nbf": "99999999999"
    });
    let key = std::fs::read(f._dir.path().join("auth/issuer-es256.p8")).unwrap();
    let token = jsonwebtoken::encode(
        &header,
        &claims,
        &jsonwebtoken::EncodingKey::from_ec_der(&key),
    )
    .unwrap();
    let refused = f.verifier.verify(&token);
    assert!(
        matches!(refused, Err(AuthError::Claims(_) | AuthError::Malformed(_))),
        "{refused:?}"
    );
}

#[test]
fn a_token_of_the_wrong_type_is_refused() {
    let f = fixture();
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256);
    header.typ = Some("id+jwt".into());
    header.kid = Some(f.issuer.kid().to_string());
    let claims = serde_json::json!({"iss": LOCAL_ISSUER, "aud": DEFAULT_AUDIENCE, "client_id": "x", "exp": now() + 60});
    let key = std::fs::read(f._dir.path().join("auth/issuer-es256.p8")).unwrap();
    let token = jsonwebtoken::encode(
        &header,
        &claims,
        &jsonwebtoken::EncodingKey::from_ec_der(&key),
    )
    .unwrap();
    assert_eq!(
        f.verifier.verify(&token),
        Err(AuthError::Type(Some("id+jwt".into())))
    );
}

#[test]
fn a_jwks_file_is_reread_after_a_key_rotation() {
    let f = fixture();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("jwks.json");
    std::fs::write(&path, serde_json::to_string(&f.issuer.jwks()).unwrap()).unwrap();
    let verifier = Verifier::from_jwks_file(&path, policy(), Bindings::embedded()).unwrap();
    let (next, _) = LocalIssuer::load_or_create(&dir.path().join("next")).unwrap();
    let token = next.mint(&request(&[Role::Statistics], None)).unwrap();
    assert!(verifier.verify(&token).is_err());
    // Rotation: the file now holds both keys (a different size, so a new mtime is not
    // needed to be seen; mtimes may be equal within one second on some filesystems).
    let both = jsonwebtoken::jwk::JwkSet {
        keys: vec![f.issuer.jwks().keys[0].clone(), next.jwks().keys[0].clone()],
    };
    std::thread::sleep(std::time::Duration::from_millis(1100));
    std::fs::write(&path, serde_json::to_string(&both).unwrap()).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(1100));
    assert!(verifier.verify(&token).unwrap().has(Role::Statistics));
}

#[test]
fn bindings_map_2020_numbers_to_2024_codes_and_a_file_adds_haram() {
    let bindings = Bindings::embedded();
    assert_eq!(bindings.len(), 356);
    // Ålesund's organisation number (1507 before 2024) writes for 1508.
    assert_eq!(
        bindings.municipality_of("920415288").map(|m| m.to_string()),
        Some("1508".into())
    );
    assert!(bindings.org_number_of("1580").is_none());
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bindings.csv");
    // A made-up number that passes mod-11 (Haram's real one is not in refdata).
    std::fs::write(
        &path,
        "# Haram\norganisasjonsnummer,kommunenummer\n999999999,1580\n",
    )
    .unwrap();
    let with_haram = Bindings::embedded().with_file(&path).unwrap();
    assert_eq!(
        with_haram
            .municipality_of("999999999")
            .map(|m| m.to_string()),
        Some("1580".into())
    );
    std::fs::write(&path, "999999998,1580\n").unwrap();
    assert!(Bindings::embedded().with_file(&path).is_err());
    std::fs::write(&path, "999999999,1507\n").unwrap();
    assert!(
        Bindings::embedded().with_file(&path).is_err(),
        "1507 is not a 2024 code"
    );
}

#[test]
fn bearer_headers_are_parsed_strictly() {
    assert_eq!(bearer("Bearer abc"), Some("abc"));
    assert_eq!(bearer("bearer  abc "), Some("abc"));
    assert_eq!(bearer("Basic abc"), None);
    assert_eq!(bearer("Bearer "), None);
    let auth = Authenticator::Off;
    assert!(auth.authenticate(None).unwrap().has(Role::Operator));
}

#[test]
fn a_cached_token_still_expires_and_a_changed_one_is_verified_again() {
    let f = fixture();
    let mut r = request(&[Role::Ingest], Some("958935420"));
    // exp = now + 1 - 30 s of leeway… make it expire within the test: issued long ago.
    r.now_unix = now() - 3600;
    r.ttl_seconds = 3600 - LEEWAY_SECONDS + 2;
    let token = f.issuer.mint(&r).unwrap();
    assert!(f.verifier.verify(&token).is_ok());
    assert!(f.verifier.verify(&token).is_ok(), "from the cache");
    // One changed signature byte is a different token: verified in full and refused.
    let mut forged = token.clone().into_bytes();
    let last = forged.len() - 2;
    forged[last] = if forged[last] == b'A' { b'B' } else { b'A' };
    let forged = String::from_utf8(forged).unwrap();
    assert!(f.verifier.verify(&forged).is_err());
    std::thread::sleep(std::time::Duration::from_millis(3100));
    assert_eq!(
        f.verifier.verify(&token),
        Err(AuthError::Expired),
        "expiry holds in the cache"
    );
}
