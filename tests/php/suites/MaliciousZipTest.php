<?php
/**
 * Hostile release packages never write outside staging and never reach the live plugin.
 *
 * @package Molam_Form_Tests
 */

/**
 * Symlinks, `..`, absolute names, oversize and zip bombs, through the real upgrade flow.
 */
class MaliciousZipTest extends Molam_Form_TestCase {

	/**
	 * A signed zip whose entries are given raw.
	 *
	 * @param callable $fill Adds entries to the ZipArchive.
	 * @return array Release.
	 */
	private function hostile_release( $fill ) {
		$release = $this->build_release( '4.0.0' );
		$zip     = new ZipArchive();
		$zip->open( $release['path'] );
		$fill( $zip );
		$zip->close();
		$bytes                = (string) file_get_contents( $release['path'] );
		$release['sha256']    = hash( 'sha256', $bytes );
		$release['signature'] = base64_encode( sodium_crypto_sign_detached( $bytes, sodium_crypto_sign_secretkey( self::$keypair ) ) );
		return $release;
	}

	/**
	 * Publish, upgrade, and check that nothing changed anywhere.
	 *
	 * @param array  $release Release.
	 * @param string $error   Expected error.
	 */
	private function assertRefused( $release, $error ) {
		$outside = WP_PLUGIN_DIR . '/.molam-agent/PWNED.php';
		$this->publish( $release );
		$result = $this->upgrade();
		$this->assertSame( 'failed', $result['status'], wp_json_encode( $result ) );
		$this->assertSame( 'not_required', $result['rollback_status'] );
		$this->assertStringContainsString( $error, $result['error'] );
		$this->assertWhollyOld();
		$this->assertFileDoesNotExist( $outside );
		$this->assertFileDoesNotExist( WP_CONTENT_DIR . '/PWNED.php' );
		$this->assertSame( array(), array_values( preg_grep( '/^(staging|download)-/', scandir( Molam_Form_Settings::work_dir() ) ) ) );
		$this->assertSame( 'failed', $this->cp_upgrades()[0]['status'] );
	}

	public function test_a_symlink_entry_is_refused() {
		$release = $this->hostile_release(
			function ( $zip ) {
				$zip->addFromString( 'molam-gateway/up', '../../..' );
				$zip->setExternalAttributesName( 'molam-gateway/up', ZipArchive::OPSYS_UNIX, ( 0120777 ) << 16 );
				$zip->addFromString( 'molam-gateway/up/PWNED.php', '<?php echo "pwned";' );
			}
		);
		$this->assertRefused( $release, 'is a symlink; symlinks are refused' );
	}

	public function test_a_dot_dot_entry_is_refused() {
		$release = $this->hostile_release(
			function ( $zip ) {
				$zip->addFromString( 'molam-gateway/../../PWNED.php', '<?php echo "pwned";' );
			}
		);
		$this->assertRefused( $release, 'path traversal' );
	}

	public function test_an_absolute_entry_is_refused() {
		$release = $this->hostile_release(
			function ( $zip ) {
				$zip->addFromString( '/tmp/PWNED.php', '<?php echo "pwned";' );
			}
		);
		$this->assertRefused( $release, 'is an absolute path' );
	}

	public function test_a_package_expanding_over_the_limit_is_refused() {
		$this->set_settings( array( 'max_unpacked_mb' => 1 ) );
		$release = $this->hostile_release(
			function ( $zip ) {
				$zip->addFromString( 'molam-gateway/assets/big.bin', random_bytes( 1 << 20 ) );
			}
		);
		$this->assertRefused( $release, 'over the 1048576 limit' );
	}

	public function test_a_zip_bomb_is_refused_by_its_compression_ratio() {
		$release = $this->hostile_release(
			function ( $zip ) {
				$zip->addFromString( 'molam-gateway/assets/bomb.txt', str_repeat( 'A', 8 << 20 ) );
			}
		);
		$this->assertRefused( $release, 'zip-bomb compression ratio' );
	}

	public function test_a_duplicate_entry_is_refused() {
		$release = $this->hostile_release(
			function ( $zip ) {
				$zip->addFromString( 'molam-gateway/./readme.txt', 'second copy' );
			}
		);
		$this->assertRefused( $release, "appears twice" );
	}

	public function test_a_package_over_the_download_limit_is_refused_while_downloading() {
		$this->set_settings( array( 'max_download_mb' => 1 ) );
		$release = $this->hostile_release(
			function ( $zip ) {
				$zip->addFromString( 'molam-gateway/assets/noise.bin', random_bytes( 3 << 19 ) );
			}
		);
		$this->assertRefused( $release, 'larger than 1 MiB' );
	}

	public function test_an_http_download_url_off_loopback_is_refused_before_any_request() {
		$dest = Molam_Form_Store::prepare() . '/download-http.zip';
		try {
			Molam_Form_Release::download( 'http://downloads.example.com/molam-gateway-4.0.0.zip', $dest, 1 << 20 );
			$this->fail( 'an http download URL off loopback was accepted' );
		} catch ( Molam_Form_Verification_Error $e ) {
			$this->assertStringContainsString( 'https required', $e->getMessage() );
		}
		$this->assertFileDoesNotExist( $dest );
		$this->assertTrue( Molam_Form_Http::allowed_url( 'http://127.0.0.1:8080/x.zip' ) );
		$this->assertTrue( Molam_Form_Http::allowed_url( 'http://[::1]/x.zip' ) );
		$this->assertTrue( Molam_Form_Http::allowed_url( 'https://cdn.example.com/x.zip' ) );
		$this->assertFalse( Molam_Form_Http::allowed_url( 'http://127.0.0.1.example.com/x.zip' ) );
		$this->assertFalse( Molam_Form_Http::allowed_url( 'ftp://127.0.0.1/x.zip' ) );
	}
}
