<?php
/**
 * Release packages: download, SHA-256 and Ed25519 verification, safe extraction.
 *
 * @package Molam_Form
 */

defined( 'ABSPATH' ) || exit;

/**
 * A release refused before anything live changed (checksum, signature, unsafe archive).
 */
class Molam_Form_Verification_Error extends RuntimeException {
}

/**
 * The agent's package rules (`docs/agent.md`, Release packages), with one deliberate
 * difference: symlink entries are refused outright, like the agent after issue 9, instead of
 * being resolved (PHP cannot open with O_NOFOLLOW).
 */
class Molam_Form_Release {

	const MAX_ENTRIES = 100000;
	// A deflated entry over 1 MiB that expands more than this is a zip bomb.
	const MAX_RATIO = 200;

	/**
	 * Fetch the package to `$dest` (at most `$max_bytes`); return its SHA-256.
	 *
	 * @param string $url       Download URL (https, or http to a loopback host).
	 * @param string $dest      Destination file.
	 * @param int    $max_bytes Size limit.
	 * @return string
	 * @throws Molam_Form_Verification_Error On a refused URL, a failed download or an oversize package.
	 */
	public static function download( $url, $dest, $max_bytes ) {
		if ( ! Molam_Form_Http::allowed_url( $url ) ) {
			throw new Molam_Form_Verification_Error( "refusing download URL $url: https required (http only for a loopback address)" );
		}
		// No Authorization header goes to the download host; redirects stay within https.
		$response = wp_remote_get(
			$url,
			array(
				'timeout'             => 60,
				'redirection'         => 3,
				'stream'              => true,
				'filename'            => $dest,
				'limit_response_size' => $max_bytes + 1,
				'user-agent'          => 'molam-form/' . MOLAM_FORM_VERSION,
			)
		);
		if ( is_wp_error( $response ) ) {
			throw new Molam_Form_Verification_Error( "cannot download $url: " . $response->get_error_message() );
		}
		$status = (int) wp_remote_retrieve_response_code( $response );
		if ( 200 !== $status ) {
			throw new Molam_Form_Verification_Error( "cannot download $url: HTTP $status" );
		}
		clearstatcache( true, $dest );
		if ( filesize( $dest ) > $max_bytes ) {
			throw new Molam_Form_Verification_Error( 'release package is larger than ' . ( $max_bytes >> 20 ) . ' MiB' );
		}
		return hash_file( 'sha256', $dest );
	}

	/**
	 * Refuse a package whose SHA-256 differs from the release's.
	 *
	 * @param string $actual   Computed.
	 * @param string $expected Announced.
	 * @throws Molam_Form_Verification_Error On a mismatch.
	 */
	public static function verify_checksum( $actual, $expected ) {
		if ( '' === (string) $expected || ! hash_equals( strtolower( trim( $expected ) ), strtolower( $actual ) ) ) {
			throw new Molam_Form_Verification_Error( "checksum mismatch: expected sha256 $expected, got $actual" );
		}
	}

	/**
	 * An Ed25519 public key as 32 raw bytes, from base64 or a PEM `PUBLIC KEY` block; null if invalid.
	 *
	 * @param string $text Key text.
	 * @return string|null
	 */
	public static function parse_public_key( $text ) {
		$text = trim( (string) $text );
		if ( 0 === strpos( $text, '-----BEGIN' ) ) {
			$der = base64_decode( preg_replace( '/-----[^-]+-----|\s+/', '', $text ), true );
			// SubjectPublicKeyInfo of an Ed25519 key: 12 fixed bytes, then the 32-byte key.
			if ( false === $der || 44 !== strlen( $der ) || "\x30\x2a\x30\x05\x06\x03\x2b\x65\x70\x03\x21\x00" !== substr( $der, 0, 12 ) ) {
				return null;
			}
			return substr( $der, 12 );
		}
		$raw = base64_decode( $text, true );
		return false !== $raw && SODIUM_CRYPTO_SIGN_PUBLICKEYBYTES === strlen( $raw ) ? $raw : null;
	}

	/**
	 * Check the Ed25519 signature (base64, over the package's raw bytes).
	 *
	 * @param string      $package   Package file.
	 * @param string|null $signature Base64 signature.
	 * @param string      $key_text  Public key (base64 or PEM).
	 * @throws Molam_Form_Verification_Error On a missing or bad signature.
	 */
	public static function verify_signature( $package, $signature, $key_text ) {
		$key = self::parse_public_key( $key_text );
		if ( null === $key ) {
			throw new Molam_Form_Verification_Error( 'no valid release public key is configured: unsigned releases are refused' );
		}
		if ( empty( $signature ) ) {
			throw new Molam_Form_Verification_Error( 'release is not signed: unsigned releases are refused' );
		}
		$sig = base64_decode( trim( $signature ), true );
		if ( false === $sig || SODIUM_CRYPTO_SIGN_BYTES !== strlen( $sig ) ) {
			throw new Molam_Form_Verification_Error( 'release signature is not base64 of 64 bytes' );
		}
		if ( ! sodium_crypto_sign_verify_detached( $sig, (string) file_get_contents( $package ), $key ) ) {
			throw new Molam_Form_Verification_Error( 'release signature does not verify against the configured public key' );
		}
	}

	/**
	 * Normalise a member name or refuse it (absolute, drive letter, `..`, backslash, NUL).
	 *
	 * @param string $name Member name.
	 * @return string
	 * @throws Molam_Form_Verification_Error On an unsafe name.
	 */
	private static function clean_name( $name ) {
		if ( false !== strpos( $name, "\0" ) || false !== strpos( $name, '\\' ) ) {
			throw new Molam_Form_Verification_Error( "archive member '$name' has a forbidden character" );
		}
		if ( 0 === strpos( $name, '/' ) || ( strlen( $name ) > 1 && ':' === $name[1] ) ) {
			throw new Molam_Form_Verification_Error( "archive member '$name' is an absolute path" );
		}
		$parts = array_values( array_filter( explode( '/', $name ), fn( $p ) => '' !== $p && '.' !== $p ) );
		if ( in_array( '..', $parts, true ) ) {
			throw new Molam_Form_Verification_Error( "archive member '$name' escapes the archive (path traversal)" );
		}
		return implode( '/', $parts );
	}

	/**
	 * Extract a release zip into `$dest` (created; must not exist); return the file count.
	 * Files at the root or inside one top folder (stripped). Everything is checked before the
	 * first byte is written: names, duplicates, symlinks, entry count, declared sizes; bytes
	 * actually written are counted too (headers are not trusted).
	 *
	 * @param string $package      Zip file.
	 * @param string $dest         Staging directory.
	 * @param int    $max_unpacked Byte limit once expanded.
	 * @return int
	 * @throws Molam_Form_Verification_Error On an unsafe or invalid archive.
	 */
	public static function extract( $package, $dest, $max_unpacked ) {
		$zip = new ZipArchive();
		if ( true !== $zip->open( $package, ZipArchive::RDONLY ) ) {
			throw new Molam_Form_Verification_Error( 'release package is not a valid zip' );
		}
		try {
			if ( $zip->numFiles > self::MAX_ENTRIES ) {
				throw new Molam_Form_Verification_Error( 'archive has more than ' . self::MAX_ENTRIES . ' entries' );
			}
			$entries  = array();
			$declared = 0;
			for ( $i = 0; $i < $zip->numFiles; $i++ ) {
				$stat = $zip->statIndex( $i, ZipArchive::FL_UNCHANGED );
				$name = self::clean_name( (string) $stat['name'] );
				if ( '' === $name ) {
					continue;
				}
				$opsys = 0;
				$attr  = 0;
				$zip->getExternalAttributesIndex( $i, $opsys, $attr );
				$mode = ZipArchive::OPSYS_UNIX === $opsys ? ( $attr >> 16 ) & 0xFFFF : 0;
				if ( 0120000 === ( $mode & 0170000 ) ) {
					throw new Molam_Form_Verification_Error( "archive member '$name' is a symlink; symlinks are refused" );
				}
				$is_dir = '/' === substr( (string) $stat['name'], -1 );
				if ( ! $is_dir && $stat['size'] > ( 1 << 20 ) && $stat['comp_size'] > 0 && $stat['size'] / $stat['comp_size'] > self::MAX_RATIO ) {
					throw new Molam_Form_Verification_Error( "archive member '$name' has a zip-bomb compression ratio" );
				}
				$declared += (int) $stat['size'];
				$entries[] = array( $i, $name, $is_dir, $mode & 0777, (string) $stat['name'] );
			}
			if ( ! $entries ) {
				throw new Molam_Form_Verification_Error( 'release package is empty' );
			}
			if ( $declared > $max_unpacked ) {
				throw new Molam_Form_Verification_Error( "archive expands to $declared bytes, over the $max_unpacked limit" );
			}
			$tops  = array_unique( array_map( fn( $e ) => explode( '/', $e[1], 2 )[0], $entries ) );
			$strip = '';
			if ( 1 === count( $tops ) ) {
				$top = reset( $tops );
				$all = array_filter( $entries, fn( $e ) => $e[1] !== $top || $e[2] );
				if ( count( $all ) === count( $entries ) ) {
					$strip = $top . '/';
				}
			}
			$seen = array();
			foreach ( $entries as $k => $entry ) {
				$rel = $entry[1];
				if ( '' !== $strip ) {
					$rel = 0 === strpos( $rel, $strip ) ? substr( $rel, strlen( $strip ) ) : ( $rel . '/' === $strip ? '' : $rel );
				}
				if ( '' === $rel ) {
					unset( $entries[ $k ] );
					continue;
				}
				if ( isset( $seen[ $rel ] ) ) {
					throw new Molam_Form_Verification_Error( "archive member '$rel' appears twice" );
				}
				$seen[ $rel ]         = true;
				$entries[ $k ][1]     = $rel;
			}
			if ( ! mkdir( $dest, 0755 ) ) {
				throw new Molam_Form_Verification_Error( "cannot create $dest" );
			}
			$written = 0;
			$files   = 0;
			foreach ( $entries as list( $index, $rel, $is_dir, $mode, $raw ) ) {
				$target = "$dest/$rel";
				if ( $is_dir ) {
					if ( ! is_dir( $target ) ) {
						mkdir( $target, 0755, true );
					}
					continue;
				}
				if ( ! is_dir( dirname( $target ) ) ) {
					mkdir( dirname( $target ), 0755, true );
				}
				// getStreamIndex() is PHP 8.2+; names are unique here (duplicates were refused).
				$in  = method_exists( $zip, 'getStreamIndex' ) ? $zip->getStreamIndex( $index ) : $zip->getStream( $raw );
				$out = fopen( $target, 'xb' );
				if ( false === $in || false === $out ) {
					throw new Molam_Form_Verification_Error( "cannot extract '$rel'" );
				}
				while ( ! feof( $in ) ) {
					$chunk    = (string) fread( $in, 1 << 20 );
					$written += strlen( $chunk );
					if ( $written > $max_unpacked ) {
						fclose( $in );
						fclose( $out );
						throw new Molam_Form_Verification_Error( "archive expands beyond the $max_unpacked byte limit" );
					}
					fwrite( $out, $chunk );
				}
				fclose( $in );
				fclose( $out );
				// No setuid/sticky, never group/world-writable.
				chmod( $target, ( ( $mode ? $mode : 0644 ) & 0755 ) | 0600 );
				++$files;
			}
			Molam_Form_Store::fault( 'extract:done' );
			return $files;
		} finally {
			$zip->close();
		}
	}

	/**
	 * Version from the WordPress header of a plugin file (`Version: 4.0.0`).
	 *
	 * @param string $file Plugin main file.
	 * @return string|null
	 */
	public static function header_version( $file ) {
		if ( ! is_file( $file ) ) {
			return null;
		}
		$head = (string) file_get_contents( $file, false, null, 0, 8192 );
		return preg_match( '/^[ \t\/*#@]*Version:\s*([0-9][0-9A-Za-z.+-]{0,63})\s*$/mi', $head, $m ) ? $m[1] : null;
	}
}
