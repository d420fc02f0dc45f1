<?php
/**
 * Releases that must not go live, and upgrades that fail after the swap.
 *
 * @package Molam_Form_Tests
 */

/**
 * Failing smoke test, wrong checksum, bad or missing signature, refused migrations.
 */
class FailuresTest extends Molam_Form_TestCase {

	public function test_a_failing_smoke_test_rolls_back_to_the_old_files() {
		$release = $this->build_release( '4.0.0', array( 'broken' => true, 'migrations' => array( '001_note.sql' => 'ALTER TABLE {prefix}molam_orders ADD COLUMN note TEXT;' ) ) );
		$this->publish( $release );

		$result = $this->upgrade();

		$this->assertSame( 'failed', $result['status'], wp_json_encode( $result ) );
		$this->assertSame( 'success', $result['rollback_status'] );
		$this->assertStringContainsString( 'health URL answered HTTP 503', $result['error'] );
		$this->assertSame( self::tree( self::fixture_dir() ), self::tree( self::live_dir() ) );
		$this->assertSame( $this->orders_before, $this->orders( array( 'id', 'merchant_ref', 'amount_cents', 'currency', 'status', 'created_at' ) ) );
		$this->assertStringContainsString( '`note` text', $this->schema(), 'the additive column stays after the rollback' );
		$this->assertSame( array( '001_note.sql' ), array_keys( Molam_Form_Migrations::applied( $this->plugin ) ), 'and stays recorded' );
		$this->assertTrue( Molam_Form_Upgrade::test_payment_processing() );
		$this->assertNull( molam_form_in_maintenance() );
		$this->assertSame( 'rolled_back', $this->cp_upgrades()[0]['status'] );
		$this->assertStringContainsString( 'smoke test failed', $this->cp_rollbacks()[0]['rollback_reason'] );
	}

	/**
	 * A release refused before the live plugin is touched.
	 *
	 * @param array  $result Result.
	 * @param string $error  Expected part of the error.
	 */
	private function assertRefusedUntouched( $result, $error ) {
		$this->assertSame( 'failed', $result['status'], wp_json_encode( $result ) );
		$this->assertSame( 'not_required', $result['rollback_status'] );
		$this->assertStringContainsString( $error, $result['error'] );
		$this->assertWhollyOld();
		$this->assertFileDoesNotExist( Molam_Form_Settings::work_dir() . '/journal.json' );
		$leftovers = preg_grep( '/^(staging|download|prev|failed)-/', scandir( Molam_Form_Settings::work_dir() ) );
		$this->assertSame( array(), array_values( $leftovers ), 'no staging or download left behind' );
		$logs = $this->cp_upgrades();
		$this->assertCount( 1, $logs );
		$this->assertSame( 'failed', $logs[0]['status'] );
		$this->assertSame( array(), $this->cp_rollbacks() );
	}

	public function test_a_wrong_checksum_is_refused_before_anything_changes() {
		$release = $this->build_release( '4.0.0' );
		$this->publish( $release, 100, array( 'sha256' => hash( 'sha256', 'another package' ) ) );
		$this->assertRefusedUntouched( $this->upgrade(), 'checksum mismatch' );
	}

	public function test_a_bad_signature_is_refused_before_anything_changes() {
		$release = $this->build_release( '4.0.0' );
		$other   = sodium_crypto_sign_keypair();
		$forged  = base64_encode( sodium_crypto_sign_detached( (string) file_get_contents( $release['path'] ), sodium_crypto_sign_secretkey( $other ) ) );
		$this->publish( $release, 100, array( 'signature' => $forged ) );
		$this->assertRefusedUntouched( $this->upgrade(), 'signature does not verify' );
	}

	public function test_an_unsigned_release_is_refused_by_default() {
		$release = $this->build_release( '4.0.0' );
		$this->publish( $release, 100, array( 'signature' => '' ) );
		$this->assertRefusedUntouched( $this->upgrade(), 'not signed' );
	}

	public function test_without_a_public_key_every_release_is_refused() {
		$this->set_settings( array( 'public_key' => '' ) );
		$release = $this->build_release( '4.0.0' );
		$this->publish( $release );
		$this->assertRefusedUntouched( $this->upgrade(), 'no valid release public key' );
	}

	public function test_a_migration_naming_another_table_is_refused_before_the_pause() {
		$release = $this->build_release( '4.0.0', array( 'migrations' => array( '001_evil.sql' => 'UPDATE wp_users SET user_pass = NULL;' ) ) );
		$this->publish( $release );
		$this->assertRefusedUntouched( $this->upgrade(), 'table wp_users is not one of the plugin' );
	}

	public function test_a_contract_migration_without_a_down_file_is_refused_before_the_pause() {
		$release = $this->build_release( '4.0.0', array( 'migrations' => array( '001_drop.sql' => 'ALTER TABLE {prefix}molam_orders DROP COLUMN currency;' ) ) );
		$this->publish( $release );
		$this->assertRefusedUntouched( $this->upgrade(), 'ships no migrations/down/001_drop.sql' );
	}

	public function test_a_package_announcing_another_version_is_refused() {
		$release = $this->build_release( '4.0.0' );
		$liar    = $this->build_release( '4.1.0' );
		$this->publish( $release, 100, array( 'download_url' => $liar['url'], 'sha256' => $liar['sha256'], 'signature' => $liar['signature'] ) );
		$this->assertRefusedUntouched( $this->upgrade(), 'contains version 4.1.0, expected 4.0.0' );
	}
}
