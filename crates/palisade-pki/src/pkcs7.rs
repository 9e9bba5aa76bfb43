//! The certs-only PKCS#7 (CMS SignedData without signers) that EST returns (RFC 7030 §4.1.3).

const OID_SIGNED_DATA: &[u8] = &[0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x02];
const OID_DATA: &[u8] = &[0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x01];

fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let len = content.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes: Vec<u8> = len.to_be_bytes().into_iter().skip_while(|b| *b == 0).collect();
        out.push(0x80 | bytes.len() as u8);
        out.extend_from_slice(&bytes);
    }
    out.extend_from_slice(content);
    out
}

/// `ContentInfo { signedData, SignedData { v1, {}, {data}, certificates, {} } }`, DER.
pub fn certs_only(certs: &[&[u8]]) -> Vec<u8> {
    let version = [0x02, 0x01, 0x01];
    let digest_algorithms = tlv(0x31, &[]);
    let encap = tlv(0x30, OID_DATA);
    let certificates = tlv(0xa0, &certs.concat());
    let signer_infos = tlv(0x31, &[]);
    let signed_data = tlv(0x30, &[&version[..], &digest_algorithms, &encap, &certificates, &signer_infos].concat());
    tlv(0x30, &[OID_SIGNED_DATA, &tlv(0xa0, &signed_data)].concat())
}

/// Splits one DER element off the front of `b`: (tag, content, rest). `None` when malformed.
fn read_tlv(b: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = b.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 {
            return None;
        }
        let (len, rest) = rest.split_at_checked(n)?;
        (len.iter().fold(0usize, |a, b| (a << 8) | usize::from(*b)), rest)
    };
    let (content, rest) = rest.split_at_checked(len)?;
    Some((tag, content, rest))
}

/// The certificates (DER, in order) of a certs-only PKCS#7 such as an EST response; `None` when
/// it is not one.
pub fn certificates(der: &[u8]) -> Option<Vec<Vec<u8>>> {
    let (0x30, content_info, _) = read_tlv(der)? else { return None };
    let rest = content_info.strip_prefix(OID_SIGNED_DATA)?;
    let (0xa0, explicit, _) = read_tlv(rest)? else { return None };
    let (0x30, signed_data, _) = read_tlv(explicit)? else { return None };
    // version, digestAlgorithms, encapContentInfo, then [0] certificates.
    let (_, _, rest) = read_tlv(signed_data)?;
    let (_, _, rest) = read_tlv(rest)?;
    let (_, _, rest) = read_tlv(rest)?;
    let (0xa0, mut certs, _) = read_tlv(rest)? else { return None };
    let mut out = Vec::new();
    while !certs.is_empty() {
        let (0x30, _, rest) = read_tlv(certs)? else { return None };
        out.push(certs.get(..certs.len() - rest.len())?.to_vec());
        certs = rest;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn certificates_read_back_what_certs_only_wrote() {
        let a = tlv(0x30, &[1, 2, 3]);
        let b = tlv(0x30, &[7; 300]);
        assert_eq!(certificates(&certs_only(&[&a, &b])), Some(vec![a.clone(), b]));
        assert_eq!(certificates(&certs_only(&[])), Some(vec![]));
        // Truncated or garbage input is refused, never a panic.
        let p = certs_only(&[&a]);
        for n in 0..p.len() {
            assert_eq!(certificates(&p[..n]), None, "{n}");
        }
        assert_eq!(certificates(&[0x30, 0x84, 0xff, 0xff, 0xff, 0xff]), None);
    }

    #[test]
    fn lengths_are_encoded_in_short_and_long_form() {
        assert_eq!(tlv(0x04, &[1, 2]), vec![0x04, 2, 1, 2]);
        let long = tlv(0x04, &[0; 300]);
        assert_eq!(&long[..4], &[0x04, 0x82, 0x01, 0x2c]);
        let p = certs_only(&[&[0x30, 0x00]]);
        assert_eq!(p[0], 0x30);
    }
}
