//! Known-answer tests: AWS's published SigV4 examples, and the shapes of the S3 helpers.

use super::sigv4::{self, Canonical, Scope, EMPTY_SHA256};
use super::xml;
use super::{effective_part_size, S3Config};

/// AWS SigV4 test suite credentials (`get-vanilla` and friends).
const SUITE_ACCESS: &str = "AKIDEXAMPLE";
const SUITE_SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";

/// Credentials of the S3 API reference's header-signing examples.
const S3_ACCESS: &str = "AKIAIOSFODNN7EXAMPLE";
const S3_SECRET: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
const S3_HOST: &str = "examplebucket.s3.amazonaws.com";
const S3_DATE: &str = "20130524T000000Z";

fn s3_scope() -> Scope<'static> {
    Scope {
        amz_date: S3_DATE,
        region: "us-east-1",
        service: "s3",
    }
}

fn q(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn get_vanilla_from_the_sigv4_test_suite() {
    let scope = Scope {
        amz_date: "20150830T123600Z",
        region: "us-east-1",
        service: "service",
    };
    let request = Canonical {
        method: "GET",
        path: "/",
        query: &[],
        headers: &[
            ("Host", "example.amazonaws.com"),
            ("X-Amz-Date", "20150830T123600Z"),
        ],
        payload_hash: EMPTY_SHA256,
    };
    let (canonical, _) = sigv4::canonical_request(&request);
    assert_eq!(
        canonical,
        "GET\n/\n\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\nhost;x-amz-date\n\
         e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    );
    let signed = sigv4::sign(&request, &scope, SUITE_ACCESS, SUITE_SECRET);
    assert_eq!(
        signed.authorization,
        "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, \
         SignedHeaders=host;x-amz-date, \
         Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"
    );
}

#[test]
fn s3_get_object_example() {
    let request = Canonical {
        method: "GET",
        path: "/test.txt",
        query: &[],
        headers: &[
            ("Host", S3_HOST),
            ("Range", "bytes=0-9"),
            ("x-amz-content-sha256", EMPTY_SHA256),
            ("x-amz-date", S3_DATE),
        ],
        payload_hash: EMPTY_SHA256,
    };
    let (canonical, _) = sigv4::canonical_request(&request);
    let to_sign = sigv4::string_to_sign(&s3_scope(), &canonical);
    assert_eq!(
        to_sign,
        "AWS4-HMAC-SHA256\n20130524T000000Z\n20130524/us-east-1/s3/aws4_request\n\
         7344ae5b7ee6c3e7e6b0fe0640412a37625d1fbfff95c48bbb2dc43964946972"
    );
    let signed = sigv4::sign(&request, &s3_scope(), S3_ACCESS, S3_SECRET);
    assert_eq!(
        signed.signature,
        "f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41"
    );
    assert_eq!(
        signed.signed_headers,
        "host;range;x-amz-content-sha256;x-amz-date"
    );
}

#[test]
fn s3_put_object_example_with_an_encoded_key() {
    let path = sigv4::encode_path("/test$file.text");
    assert_eq!(path, "/test%24file.text");
    let payload = "44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072";
    let request = Canonical {
        method: "PUT",
        path: &path,
        query: &[],
        headers: &[
            ("Host", S3_HOST),
            ("Date", "Fri, 24 May 2013 00:00:00 GMT"),
            ("x-amz-date", S3_DATE),
            ("x-amz-storage-class", "REDUCED_REDUNDANCY"),
            ("x-amz-content-sha256", payload),
        ],
        payload_hash: payload,
    };
    let signed = sigv4::sign(&request, &s3_scope(), S3_ACCESS, S3_SECRET);
    assert_eq!(
        signed.signature,
        "98ad721746da40c64f1a55b78f14c238d841ea1380cd77a1b5971af0ece108bd"
    );
}

#[test]
fn s3_valueless_and_sorted_query_examples() {
    let headers = [
        ("Host", S3_HOST),
        ("x-amz-content-sha256", EMPTY_SHA256),
        ("x-amz-date", S3_DATE),
    ];
    let lifecycle = q(&[("lifecycle", "")]);
    let request = Canonical {
        method: "GET",
        path: "/",
        query: &lifecycle,
        headers: &headers,
        payload_hash: EMPTY_SHA256,
    };
    assert_eq!(
        sigv4::sign(&request, &s3_scope(), S3_ACCESS, S3_SECRET).signature,
        "fea454ca298b7da1c68078a5d1bdbfbbe0d65c699e0f91ac7a200a0136783543"
    );
    let list = q(&[("prefix", "J"), ("max-keys", "2")]);
    let request = Canonical {
        query: &list,
        ..request
    };
    assert_eq!(sigv4::canonical_query(&list), "max-keys=2&prefix=J");
    assert_eq!(
        sigv4::sign(&request, &s3_scope(), S3_ACCESS, S3_SECRET).signature,
        "34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7"
    );
}

#[test]
fn the_secret_changes_the_signature() {
    let request = Canonical {
        method: "GET",
        path: "/",
        query: &[],
        headers: &[("host", "h"), ("x-amz-date", S3_DATE)],
        payload_hash: EMPTY_SHA256,
    };
    let a = sigv4::sign(&request, &s3_scope(), S3_ACCESS, "one");
    let b = sigv4::sign(&request, &s3_scope(), S3_ACCESS, "two");
    assert_ne!(a.signature, b.signature);
    assert!(sigv4::same_signature(&a.signature, &a.signature.clone()));
    assert!(!sigv4::same_signature(&a.signature, &b.signature));
}

#[test]
fn query_values_round_trip_through_encoding() {
    let pairs = q(&[("uploadId", "a+b/c=d~e f"), ("partNumber", "7")]);
    let wire = sigv4::query_string(&pairs);
    assert_eq!(wire, "partNumber=7&uploadId=a%2Bb%2Fc%3Dd~e%20f");
    let mut back = sigv4::parse_query(Some(&wire));
    back.sort();
    let mut want = pairs.clone();
    want.sort();
    assert_eq!(back, want);
}

#[test]
fn xml_elements_and_error_documents() {
    let doc = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<InitiateMultipartUploadResult>\
               <Bucket>b</Bucket><Key>k</Key><UploadId>x&amp;y</UploadId></InitiateMultipartUploadResult>";
    assert_eq!(xml::element(doc, "UploadId").as_deref(), Some("x&y"));
    assert!(!xml::is_error(doc));
    let error =
        "<?xml version=\"1.0\"?>\n<Error><Code>InvalidPart</Code><Message>m</Message></Error>";
    assert!(xml::is_error(error));
    assert_eq!(xml::element(error, "Code").as_deref(), Some("InvalidPart"));
    let body = xml::complete_body(&[(1, "\"e1\"".into()), (2, "\"e2\"".into())]);
    assert_eq!(xml::elements(&body, "PartNumber"), vec!["1", "2"]);
    assert_eq!(xml::elements(&body, "ETag"), vec!["\"e1\"", "\"e2\""]);
}

#[test]
fn part_size_grows_only_past_ten_thousand_parts() {
    let sixteen = 16 << 20;
    assert_eq!(effective_part_size(1 << 30, sixteen), sixteen);
    let huge = 10_000 * sixteen + 1;
    assert_eq!(effective_part_size(huge, sixteen), sixteen + 1);
    assert!(huge.div_ceil(effective_part_size(huge, sixteen)) <= 10_000);
}

#[test]
fn location_uri_is_what_glance_store_writes() {
    let mut config = S3Config {
        endpoint: "http://127.0.0.1:9000".into(),
        region: "us-east-1".into(),
        bucket: "images".into(),
        access_key: "AK".into(),
        secret_key: "SECRET".into(),
        part_size: 16 << 20,
        location_host: None,
    };
    assert_eq!(config.location_uri("abc"), "s3://127.0.0.1:9000/images/abc");
    config.endpoint = "https://s3.example.org".into();
    assert_eq!(
        config.location_uri("abc"),
        "s3+https://s3.example.org/images/abc"
    );
    config.location_host = Some("s3.internal:8080".into());
    assert_eq!(
        config.location_uri("abc"),
        "s3+https://s3.internal:8080/images/abc"
    );
    let printed = format!("{config:?}");
    assert!(!printed.contains("SECRET"), "{printed}");
}

#[test]
fn content_md5_is_standard_padded_base64() {
    // RFC 4648's test vectors, and the Content-MD5 of an empty body.
    for (input, want) in [
        ("", ""),
        ("f", "Zg=="),
        ("fo", "Zm8="),
        ("foo", "Zm9v"),
        ("foob", "Zm9vYg=="),
        ("fooba", "Zm9vYmE="),
        ("foobar", "Zm9vYmFy"),
    ] {
        assert_eq!(super::base64(input.as_bytes()), want, "{input:?}");
    }
    let empty_md5 = [
        0xd4, 0x1d, 0x8c, 0xd9, 0x8f, 0x00, 0xb2, 0x04, 0xe9, 0x80, 0x09, 0x98, 0xec, 0xf8, 0x42,
        0x7e,
    ];
    assert_eq!(super::base64(&empty_md5), "1B2M2Y8AsgTpgAmY7PhCfg==");
}
