<?php
/**
 * The zip a merchant uploads in wp-admin.
 *
 * @package Molam_Form_Tests
 */

/**
 * plugins/woocommerce/build-zip gives a package WordPress installs as molam-form/.
 */
class PackageTest extends Molam_Form_TestCase {

	public function test_the_built_zip_unpacks_with_wordpress_into_molam_form_with_a_valid_header() {
		$out = getenv( 'MOLAM_TEST_TMP' ) . '/package-test';
		exec( escapeshellarg( dirname( __DIR__, 3 ) . '/plugins/woocommerce/build-zip' ) . ' ' . escapeshellarg( $out ) . ' 2>&1', $lines, $status );
		$this->assertSame( 0, $status, implode( "\n", $lines ) );
		$zip = end( $lines );
		$this->assertFileExists( $zip );

		require_once ABSPATH . 'wp-admin/includes/file.php';
		WP_Filesystem();
		$dest = "$out/unpacked";
		$this->assertTrue( unzip_file( $zip, $dest ) );

		$this->assertSame( array( 'molam-form' ), array_values( array_diff( scandir( $dest ), array( '.', '..' ) ) ) );
		$data = get_plugin_data( "$dest/molam-form/molam-form.php", false, false );
		$this->assertSame( 'Molam Form', $data['Name'] );
		$this->assertSame( MOLAM_FORM_VERSION, $data['Version'] );
		$this->assertSame( '8.1', $data['RequiresPHP'] );
		$this->assertFileExists( "$dest/molam-form/uninstall.php" );
		$this->assertFileDoesNotExist( "$dest/molam-form/build-zip", 'the build script is not shipped' );
		$this->assertSame( self::tree( dirname( __DIR__, 3 ) . '/plugins/woocommerce/includes' ), self::tree( "$dest/molam-form/includes" ) );
	}
}
