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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lengths_are_encoded_in_short_and_long_form() {
        assert_eq!(tlv(0x04, &[1, 2]), vec![0x04, 2, 1, 2]);
        let long = tlv(0x04, &[0; 300]);
        assert_eq!(&long[..4], &[0x04, 0x82, 0x01, 0x2c]);
        let p = certs_only(&[&[0x30, 0x00]]);
        assert_eq!(p[0], 0x30);
    }
}
